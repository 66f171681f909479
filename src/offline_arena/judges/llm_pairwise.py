"""LLM-as-a-judge, pairwise (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot
Arena", arXiv 2306.05685; Arena-Hard-Auto for the five-level scale).

Position bias is real, so every battle is judged twice, once in each order; if the two verdicts do not
name the same winner the battle is a tie (MT-Bench's rule). A verdict that cannot be parsed is asked
again (with sampling, so the retry can differ) and after the last retry recorded as an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..models.base import SamplingParams
from . import templates
from .base import RETRY_TEMPERATURE, Matchup, Verdict, ask_until_parsed


@dataclass(frozen=True)
class VerdictScale:
    template: str
    labels: dict[str, tuple[str, int]]  # token -> (position winner "A"|"B"|"tie", strength)


MT_BENCH = VerdictScale("pairwise", {"A": ("A", 1), "B": ("B", 1), "C": ("tie", 0)})
ARENA_HARD = VerdictScale("pairwise_arena_hard", {"A>>B": ("A", 2), "A>B": ("A", 1), "A=B": ("tie", 0),
                                                   "B>A": ("B", 1), "B>>A": ("B", 2)})
SCALES = {"mt-bench": MT_BENCH, "arena-hard": ARENA_HARD}


def parse_verdict(output: str, scale: VerdictScale) -> str | None:
    """The verdict token of the judge's own final verdict, or None.

    Only the last line that holds a verdict token counts (earlier ones may be the judge quoting an
    answer), and that line must hold exactly one distinct token of the scale."""
    pattern = re.compile(r"\[\[(" + "|".join(re.escape(t) for t in sorted(scale.labels, key=len, reverse=True)) + r")\]\]")
    for line in reversed(output.strip().splitlines()):
        tokens = set(pattern.findall(line))
        if tokens:
            return tokens.pop() if len(tokens) == 1 else None
    return None


def combine_orders(first: str, second: str) -> str:
    """Winner of a battle judged as (x, y) then as (y, x). `first`/`second` are position winners
    ("A", "B", "tie"); the second is mapped back to the original sides. Disagreement is a tie."""
    unswap = {"A": "B", "B": "A", "tie": "tie"}
    side = {"A": "model_a", "B": "model_b", "tie": "tie"}
    one, two = side[first], side[unswap[second]]
    return one if one == two else "tie"


class PairwiseJudge:
    def __init__(self, generator, scale: str = "mt-bench", max_retries: int = 2,
                 params: SamplingParams = SamplingParams(max_new_tokens=512, temperature=0.0),
                 retry_temperature: float = RETRY_TEMPERATURE):
        if scale not in SCALES:
            raise ValueError(f"unknown pairwise scale {scale!r}; known: {sorted(SCALES)}")
        self.generator, self.scale, self.max_retries = generator, SCALES[scale], max_retries
        self.params, self.retry_temperature = params, retry_temperature
        self.fingerprint = f"pairwise[{scale}]:{generator.fingerprint}"

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        # Both orders of every matchup, as one list so the backend can batch them all.
        prompts = []
        for m in matchups:
            prompts.append(self._messages(m, m.answer_a.text, m.answer_b.text))
            prompts.append(self._messages(m, m.answer_b.text, m.answer_a.text))
        outputs = ask_until_parsed(self.generator, prompts, self.params, lambda text: parse_verdict(text, self.scale),
                                   self.max_retries, self.retry_temperature)
        verdicts = []
        for i in range(len(matchups)):
            (out1, tok1), (out2, tok2) = outputs[2 * i], outputs[2 * i + 1]
            raw = {"order_ab": out1, "order_ba": out2, "verdict_ab": tok1, "verdict_ba": tok2}
            if tok1 is None or tok2 is None:
                verdicts.append(Verdict("error", explanation="the judge's verdict could not be parsed", raw=raw))
                continue
            (pos1, strength1), (pos2, strength2) = self.scale.labels[tok1], self.scale.labels[tok2]
            winner = combine_orders(pos1, pos2)
            score_a = (strength1 if pos1 == "A" else -strength1 if pos1 == "B" else 0) + \
                      (strength2 if pos2 == "B" else -strength2 if pos2 == "A" else 0)
            verdicts.append(Verdict(winner, float(score_a), float(-score_a), explanation=_explanation(out1), raw=raw))
        return verdicts

    def _messages(self, matchup: Matchup, first: str, second: str) -> list[dict]:
        question = templates.question_text(matchup.messages)
        nonce = templates.nonce_for(question, first, second)
        return templates.render(self.scale.template, {"question": question, "answer_a": templates.defuse(first),
                                                      "answer_b": templates.defuse(second), "nonce": nonce})


def _explanation(output: str) -> str:
    lines = output.strip().splitlines()
    return "\n".join(lines[:-1]).strip() if len(lines) > 1 else output.strip()
