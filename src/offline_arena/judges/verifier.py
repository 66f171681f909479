"""The verifier judge: no model, just the prompt's checkable constraints (the built-in verifiable pack).
The answer that satisfies more of them wins; equal counts are a tie."""

from __future__ import annotations

from typing import Sequence

from ..models.base import Completion, GenerationRequest
from ..prompts.constraints import check_all
from .base import Matchup, Verdict


class VerifierJudge:
    def __init__(self, loose: bool = False):
        self.loose = loose
        self.fingerprint = f"verifier:{'loose' if loose else 'strict'}"

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        return [self._one(m) for m in matchups]

    def _one(self, matchup: Matchup) -> Verdict:
        constraints = matchup.context.get("constraints")
        if not constraints:
            return Verdict("error", explanation="the prompt has no checkable constraints for the verifier")
        passed_a = check_all(matchup.answer_a.text, constraints, loose=self.loose)
        passed_b = check_all(matchup.answer_b.text, constraints, loose=self.loose)
        score_a, score_b = sum(passed_a), sum(passed_b)
        winner = "model_a" if score_a > score_b else "model_b" if score_b > score_a else "tie"
        ids = [c["id"] for c in constraints]
        return Verdict(winner, score_a, score_b,
                       explanation=f"A satisfies {score_a}/{len(ids)}, B satisfies {score_b}/{len(ids)}",
                       raw={"constraints": ids, "passed_a": passed_a, "passed_b": passed_b})


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
