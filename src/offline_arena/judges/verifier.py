"""The verifier judge: no model, just the prompt's checkable constraints (the built-in verifiable pack).
The answer that satisfies more of them wins. On equal counts, an answer that ended by itself beats one
cut off at the token limit (a reader gets a broken answer; on CPU-sized token limits most ties are of
this kind, and without the rule the arena yields almost no data that teaches stopping); otherwise a tie.
`complete_breaks_ties=False` restores pure constraint counting."""

from __future__ import annotations

from typing import Sequence

from ..models.base import Completion, GenerationRequest
from ..prompts.constraints import check_all
from .base import Matchup, Verdict


class VerifierJudge:
    def __init__(self, loose: bool = False, complete_breaks_ties: bool = True):
        self.loose = loose
        self.complete_breaks_ties = complete_breaks_ties
        # Pure counting keeps the fingerprint it had before the tie-break existed, so judgments stored under
        # the old rule are reused only by a judge that still follows it.
        self.fingerprint = f"verifier:{'loose' if loose else 'strict'}" + (":complete-wins-ties" if complete_breaks_ties else "")

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        return [self._one(m) for m in matchups]

    def _one(self, matchup: Matchup) -> Verdict:
        constraints = matchup.context.get("constraints")
        if not constraints:
            return Verdict("error", explanation="the prompt has no checkable constraints for the verifier")
        passed_a = check_all(matchup.answer_a.text, constraints, loose=self.loose)
        passed_b = check_all(matchup.answer_b.text, constraints, loose=self.loose)
        score_a, score_b = sum(passed_a), sum(passed_b)
        ids = [c["id"] for c in constraints]
        explanation = f"A satisfies {score_a}/{len(ids)}, B satisfies {score_b}/{len(ids)}"
        rank_a, rank_b = (score_a,), (score_b,)
        if self.complete_breaks_ties:
            rank_a, rank_b = (score_a, matchup.answer_a.stopped), (score_b, matchup.answer_b.stopped)
            if score_a == score_b and rank_a != rank_b:
                explanation += f"; only {'A' if matchup.answer_a.stopped else 'B'} ended by itself (the other hit the token limit)"
        winner = "model_a" if rank_a > rank_b else "model_b" if rank_b > rank_a else "tie"
        return Verdict(winner, score_a, score_b, explanation=explanation,
                       raw={"constraints": ids, "passed_a": passed_a, "passed_b": passed_b,
                            "stopped_a": matchup.answer_a.stopped, "stopped_b": matchup.answer_b.stopped})


def verifier_scorer(request: GenerationRequest, answers: Sequence[Completion]) -> list[float]:
    """Best-of-n scorer: constraints satisfied strictly; an answer that ended by itself gets half a
    constraint's worth on top (a complete answer is better than a truncated one that satisfies as much,
    and a best-of-n opponent that stops makes SFT data that teaches stopping); loose passes break ties."""
    constraints = request.context.get("constraints")
    if not constraints:
        raise ValueError("the verifier scorer needs prompts with checkable constraints "
                         "(e.g. builtin:verifiable:...); this prompt has none")
    return [sum(check_all(a.text, constraints)) + 0.5 * a.stopped + 0.001 * sum(check_all(a.text, constraints, loose=True))
            for a in answers]
