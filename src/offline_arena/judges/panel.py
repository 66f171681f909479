"""A panel of judges (PoLL, Verga et al. 2024, arXiv 2404.18796: several smaller judges from different
families agree with people better than one large judge, at a fraction of the cost).

Every member judges every matchup on its own — an LLM pairwise member in both orders, as it always does —
and the panel's verdict is the majority of the members that gave one: the side more than half of them
name wins, anything else is a tie; with no member verdict at all it is an error. Each member's verdicts are
kept in the store under the member's own key, so a panel that gains a member later asks only the new one,
and two panels that share a member share its verdicts. The raw record keeps every member's verdict, from
which the audit computes their agreement (Cohen's and Fleiss' kappa).
"""

from __future__ import annotations

from typing import Sequence

from ..keys import content_key
from .base import Matchup, Verdict


def majority(winners: Sequence[str]) -> str:
    """The panel's winner from its members' winners ("error" ones left out)."""
    votes = [w for w in winners if w != "error"]
    if not votes:
        return "error"
    for side in ("model_a", "model_b"):
        if votes.count(side) * 2 > len(votes):
            return side
    return "tie"


def member_key(member_fingerprint: str, matchup: Matchup) -> str:
    """A member's verdict on a matchup, keyed by what it saw: the prompt, its context and both answers."""
    answers = [[m.text, m.stopped] for m in (matchup.answer_a, matchup.answer_b)]
    return content_key(["panel member", member_fingerprint, list(matchup.messages), matchup.context, answers])


class PanelJudge:
    def __init__(self, members: Sequence, store=None):
        if len(members) < 2:
            raise ValueError("a panel needs at least two members")
        self.members, self.store = list(members), store
        self.fingerprint = "panel[" + ",".join(m.fingerprint for m in self.members) + "]"

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        by_member = [self._member_verdicts(member, matchups) for member in self.members]
        verdicts = []
        for i in range(len(matchups)):
            votes = {member.fingerprint: verdicts_of[i] for member, verdicts_of in zip(self.members, by_member)}
            winner = majority([v["winner"] for v in votes.values()])
            tally = ", ".join(f"{fp}: {v['winner']}" for fp, v in votes.items())
            verdicts.append(Verdict(winner, explanation=f"panel majority of {tally}", raw={"members": votes}))
        return verdicts

    def _member_verdicts(self, member, matchups: Sequence[Matchup]) -> list[dict]:
        """{"winner", "raw"} of one member on every matchup, through the store when the panel has one."""
        if self.store is None:
            return [{"winner": v.winner, "raw": v.raw} for v in member.judge(matchups)]
        keys = [member_key(member.fingerprint, m) for m in matchups]
        found = self.store.get_judgments(keys)
        todo = [i for i, key in enumerate(keys) if key not in found]
        if todo:
            fresh = member.judge([matchups[i] for i in todo])
            self.store.put_judgments([(keys[i], member.fingerprint, v) for i, v in zip(todo, fresh)])
            found = self.store.get_judgments(keys)
        return [{"winner": found[key]["winner"], "raw": found[key]["raw"]} for key in keys]
