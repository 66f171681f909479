"""`<model>@revise`: the model's own answer, repaired to meet the prompt's checkable constraints.

An opponent stronger than the target where no stronger model is at hand (the CPU quickstart): it keeps
what the model says and fixes how it says it — case, commas, start and end phrases, bullet lists, word
limits, placeholders, ... (repair.py). The repaired answer is judged like any other; only a
judge decides whether it beats the target. The draft is an independent sample (seed of its own), never
the target's cached answer, so a battle between a model and its own @revise compares two draws (greedy
requests excepted: there the draft is the model's one greedy answer, and repairing it is the point).

A runaway draft is cut back to its last complete sentence before repair, so the result is an answer that
ends (`stopped=True`; `meta["draft_stopped"]` keeps what the draft did).
"""

from __future__ import annotations

from typing import Sequence

from ..models.base import Completion, GenerationRequest, independent_request
from .repair import repair_answer


class Revise:
    # Bump when the repairs change: revised answers are cached under the fingerprint. v3: repairs for the
    # n-th paragraph's first word and two responses; repairs that compose under word and sentence caps.
    VERSION = 3

    def __init__(self, inner):
        self.inner = inner
        self.fingerprint = f"{inner.fingerprint}@revise[v{self.VERSION}]"

    def render(self, messages) -> str:
        return self.inner.render(messages)

    def drafts(self, requests: Sequence[GenerationRequest]) -> tuple[object, list[GenerationRequest]]:
        """The model the drafts come from, and what it is asked for them. A battle's caller may generate
        these together with the inner model's own answers (`battles.generate_shared_drafts`): one decode
        call instead of two when the store caches both."""
        for request in requests:
            if not request.context.get("constraints"):
                raise ValueError("a @revise model needs prompts with checkable constraints (e.g. "
                                 "builtin:verifiable:...); this prompt has none")
        return self.inner, [independent_request(r, "revise") for r in requests]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        inner, draft_requests = self.drafts(requests)
        drafts = inner.generate(draft_requests)
        results = []
        for request, draft in zip(requests, drafts):
            task = request.messages[-1]["content"].split("\n\n")[0]
            text, repaired = repair_answer(draft.text, request.context["constraints"], draft.stopped, task)
            results.append(Completion(text, True, draft.num_tokens,
                                      meta={**draft.meta, "repaired": repaired, "draft_stopped": draft.stopped}))
        return results
