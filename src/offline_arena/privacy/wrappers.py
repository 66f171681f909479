"""Wrappers that redact what leaves the machine: the prompt a generator is asked, and the prompt and
answers a judge reads. Standalone: they wrap any `Generator` / `Judge`, e.g. an `openai:` opponent or an
LLM judge behind an external endpoint.

What each sees is redacted with `deidentify`; answers come back as the model wrote them (about the
redacted prompt, so they may hold placeholders such as [NAME]: nothing is put back).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from ..judges.base import Matchup, Verdict
from ..models.base import Completion, GenerationRequest, Message, chunks_as_done
from ..prompts.sources import Prompt
from .deidentify import deidentify_messages, deidentify_together

# Appended to the inner fingerprint: cache keys and judgments made on redacted inputs never mix with
# those made on raw ones in the store.
FINGERPRINT_SUFFIX = "+deid"


class DeidentifyingGenerator:
    """Redacts every request's messages before the inner generator sees them."""

    def __init__(self, inner):
        self.inner = inner
        self.fingerprint = f"{inner.fingerprint}{FINGERPRINT_SUFFIX}"

    def render(self, messages: Sequence[Message]) -> str:
        # What the model is actually sent: the cache key (and the store's copy of the prompt) is the
        # redacted prompt, never the raw one.
        return self.inner.render(deidentify_messages(messages)[0])

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return dict(self.generate_chunks([requests]))[0]

    def generate_chunks(self, chunks: Sequence[Sequence[GenerationRequest]]):
        """As the inner generator hands chunks back (an endpoint answers several at once)."""
        redacted = [self._redacted(chunk) for chunk in chunks]
        for index, completions in chunks_as_done(self.inner, [[r for r, _ in chunk] for chunk in redacted]):
            yield index, [replace(c, meta={**c.meta, "redacted": dict(sorted(counts.items()))})
                          for c, (_, counts) in zip(completions, redacted[index])]

    @staticmethod
    def _redacted(requests: Sequence[GenerationRequest]) -> list[tuple[GenerationRequest, dict]]:
        redacted, seen = [], {}
        for request in requests:
            key = tuple((m.get("role"), m.get("content")) for m in request.messages)
            if key not in seen:  # several samples of one prompt are redacted once
                seen[key] = deidentify_messages(request.messages)
            messages, counts = seen[key]
            redacted.append((replace(request, messages=tuple(messages)), counts))
        return redacted


class DeidentifyingJudge:
    """Redacts each matchup's prompt, both answers and its `reference` (the one context field judges
    send, see judges/single_score.py) before the inner judge sees them. Other context fields (the
    verifier's structured constraints) are left as they are. Each verdict's `raw` gets "redacted": true."""

    def __init__(self, inner):
        self.inner = inner
        self.fingerprint = f"{inner.fingerprint}{FINGERPRINT_SUFFIX}"

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        verdicts = self.inner.judge([redact_matchup(m) for m in matchups])
        return [replace(v, raw={**v.raw, "redacted": True}) for v in verdicts]


def redact_matchup(matchup: Matchup) -> Matchup:
    """The prompt, both answers and the reference redacted together: a name found in the prompt is
    also removed where an answer repeats it on its own ("Dear Siobhan")."""
    contents = [m.get("content") if isinstance(m.get("content"), str) else "" for m in matchup.messages]
    reference = matchup.context.get("reference")
    texts = contents + [matchup.answer_a.text, matchup.answer_b.text,
                        reference if isinstance(reference, str) else ""]
    redacted = [r.text for r in deidentify_together(texts)]
    messages = tuple({**m, "content": text} if isinstance(m.get("content"), str) else dict(m)
                     for m, text in zip(matchup.messages, redacted))
    context = dict(matchup.context)
    if isinstance(reference, str):
        context["reference"] = redacted[-1]
    return Matchup(messages=messages, context=context,
                   answer_a=replace(matchup.answer_a, text=redacted[-3]),
                   answer_b=replace(matchup.answer_b, text=redacted[-2]))


def redact_prompt(prompt: Prompt) -> Prompt:
    """A prompt with its messages and its `reference` redacted together; its id and other metadata (the
    verifier's constraints) as they were."""
    texts = [m.get("content") if isinstance(m.get("content"), str) else "" for m in prompt.messages]
    reference = prompt.meta.get("reference")
    redacted = [r.text for r in deidentify_together(texts + [reference if isinstance(reference, str) else ""])]
    messages = tuple({**m, "content": text} if isinstance(m.get("content"), str) else dict(m)
                     for m, text in zip(prompt.messages, redacted))
    meta = {**prompt.meta, "reference": redacted[-1]} if isinstance(reference, str) else dict(prompt.meta)
    return Prompt(prompt.id, messages, meta)
