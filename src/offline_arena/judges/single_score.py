"""LLM single-answer grading, 1-10 (MT-Bench's single mode), optionally against a reference answer
(given in the prompt's context as `reference`). The pairwise winner is the higher score; equal scores
tie; an unparseable rating after the retries is an error."""

from __future__ import annotations

import re
from typing import Sequence

from ..models.base import SamplingParams
from . import templates
from .base import Matchup, Verdict, ask_until_parsed

_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")


def parse_rating(output: str) -> float | None:
    """The rating on the last line that holds one; None if missing, ambiguous or outside 1-10."""
    for line in reversed(output.strip().splitlines()):
        found = set(_RATING.findall(line))
        if found:
            if len(found) != 1:
                return None
            value = float(found.pop())
            return value if 1 <= value <= 10 else None
    return None


def rate_until_parsed(generator, prompts: Sequence[list[dict]], params: SamplingParams,
                      max_retries: int = 2) -> list[tuple[float | None, str]]:
    """(rating, judge output) for each rendered judge prompt (`ask_until_parsed` with `parse_rating`): a
    rating that never parses stays None (an error)."""
    return [(rating, text) for text, rating in ask_until_parsed(generator, prompts, params, parse_rating, max_retries)]


class SingleScoreJudge:
    def __init__(self, generator, use_reference: bool = True, max_retries: int = 2,
                 params: SamplingParams = SamplingParams(max_new_tokens=512, temperature=0.0)):
        self.generator, self.use_reference, self.max_retries, self.params = generator, use_reference, max_retries, params
        self.fingerprint = f"score[{'ref' if use_reference else 'noref'}]:{generator.fingerprint}"

    def score(self, messages, context: dict, answers: Sequence[str]) -> list[tuple[float | None, str]]:
        prompts = [self._messages(messages, context, a) for a in answers]
        return rate_until_parsed(self.generator, prompts, self.params, self.max_retries)

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        verdicts = []
        for m in matchups:
            (score_a, out_a), (score_b, out_b) = self.score(m.messages, m.context, [m.answer_a.text, m.answer_b.text])
            raw = {"output_a": out_a, "output_b": out_b}
            if score_a is None or score_b is None:
                verdicts.append(Verdict("error", score_a, score_b, "a rating could not be parsed", raw))
                continue
            winner = "model_a" if score_a > score_b else "model_b" if score_b > score_a else "tie"
            verdicts.append(Verdict(winner, score_a, score_b, f"A rated {score_a:g}, B rated {score_b:g}", raw))
        return verdicts

    def _messages(self, messages, context: dict, answer: str) -> list[dict]:
        question = templates.question_text(messages)
        reference = context.get("reference") if self.use_reference else None
        return templates.render("single_score", {
            "question": question,
            "reference_note": "Compare it with the reference answer, which is correct. " if reference else "",
            "reference_block": f"\n[Reference Answer]\n{reference}\n" if reference else "",
            "answer": templates.defuse(answer),
            "nonce": templates.nonce_for(question, answer),
        })
