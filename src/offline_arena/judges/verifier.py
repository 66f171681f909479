"""The verifier judge: no model, just the prompt's checkable constraints (the built-in verifiable pack).

The answer that satisfies more of them (strictly) wins. Three rules break equal counts, by `rule`:

- "graded" (the default): then more loose passes, then the answer that came *closer* to the constraints
  it fails (a word count nearer its bound, more of the keywords, fewer commas, ...: `closeness`), then the
  answer that ended by itself. Two failing answers are rarely equally bad, and the pair says which way
  to move: it feeds DPO and the reward model (never SFT: a target must satisfy everything).
- "complete-wins-ties": an answer that ended by itself beats one cut off at the token limit.
- "count-only": pure constraint counting; equal counts tie.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..models.base import Completion, GenerationRequest
from ..prompts.constraints import check_all
from ..prompts.closeness import closeness
from .base import Matchup, Verdict
from .spec import VERIFIER_RULES as RULES  # the spec parser checks names against the same tuple


class VerifierJudge:
    def __init__(self, loose: bool = False, rule: str = "graded"):
        if rule not in RULES:
            raise ValueError(f"verifier rule must be one of {RULES}, got {rule!r}")
        self.loose, self.rule = loose, rule
        # Each rule has its own fingerprint (pure counting keeps the one it had before tie-breaks existed),
        # so judgments stored under one rule are never reused by a judge that follows another.
        self.fingerprint = f"verifier:{'loose' if loose else 'strict'}" + ("" if rule == "count-only" else f":{rule}")

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        return [self._one(m) for m in matchups]

    @staticmethod
    def _graded(answer: Completion, constraints: list[dict]) -> tuple:
        loose = sum(check_all(answer.text, constraints, loose=True))
        near = round(sum(closeness(answer.text, c) for c in constraints), 3)
        return loose, near, answer.stopped

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
        if self.rule == "graded":
            rank_a, rank_b = self._graded(matchup.answer_a, constraints), self._graded(matchup.answer_b, constraints)
            rank_a, rank_b = (score_a, *rank_a), (score_b, *rank_b)
            if score_a == score_b and rank_a != rank_b:
                reason = ("more loose passes" if rank_a[1] != rank_b[1] else "closer to the constraints it fails"
                          if rank_a[2] != rank_b[2] else "ended by itself (the other hit the token limit)")
                explanation += f"; on equal counts {'A' if rank_a > rank_b else 'B'} wins: {reason}"
        elif self.rule == "complete-wins-ties":
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


def verifier_reward(prompts) -> "Callable[[list, str], float]":
    """A PPO reward function (RL with verifiable rewards) over `prompts` (Prompt objects with constraints):
    the share of the prompt's constraints an answer satisfies strictly, looked up by the prompt's messages."""
    from ..models.base import canonical_json

    by_messages = {canonical_json(list(p.messages)): p.meta.get("constraints") for p in prompts}
    if not all(by_messages.values()):
        raise ValueError("reward: verifier needs prompts with checkable constraints (e.g. builtin:verifiable)")

    def reward(messages, text: str) -> float:
        constraints = by_messages[canonical_json(list(messages))]
        return sum(check_all(text, constraints)) / len(constraints)

    return reward
