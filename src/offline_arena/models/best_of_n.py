"""Best-of-n: sample n answers from any model and keep the one a scorer ranks highest.

A cheap way to get an opponent stronger than the target from the target itself (rejection sampling,
as in the Llama 2 and Arena Learning set-ups): the quickstart battles SmolLM2 against its own best-of-n
under the constraint verifier.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from .base import Completion, GenerationRequest, independent_request

# scorer(request, candidate answers) -> one score per answer; higher is better. The request carries the
# prompt's messages and its context (e.g. the constraints a verifier checks).
Scorer = Callable[[GenerationRequest, Sequence[Completion]], Sequence[float]]


class BestOfN:
    def __init__(self, inner, n: int, scorer: Scorer, scorer_name: str):
        if n < 2:
            raise ValueError(f"best-of-n needs n >= 2, got {n}")
        self.inner, self.n, self.scorer = inner, n, scorer
        self.fingerprint = f"{inner.fingerprint}@best-of-{n}[{scorer_name}]"

    def render(self, messages) -> str:
        return self.inner.render(messages)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        # Sample j of request r gets sample_index r.sample_index * n + j: distinct for every (r, j), so
        # the candidates of one request are cached separately and two requests never share candidates.
        # The candidates' seed is the wrapper's own: with the request's seed, candidate 0 would be the
        # plain model's cached answer, and a target battling its own best-of-n would tie whenever that
        # answer was the best (the samples must be independent).
        # Greedy decoding gives one answer however often it is asked: ask once (the model's own greedy answer,
        # which is what a greedy evaluation of a best-of-n opponent is) and let it stand for all n.
        expanded = [r if r.params.temperature == 0 else
                    replace(independent_request(r, "best-of-n"), sample_index=r.sample_index * self.n + j)
                    for r in requests for j in range(self.n)]
        candidates = self.inner.generate(expanded)
        results = []
        for i, request in enumerate(requests):
            options = candidates[i * self.n:(i + 1) * self.n]
            scores = list(self.scorer(request, options))
            if len(scores) != len(options):
                raise ValueError(f"best-of-{self.n} scorer returned {len(scores)} scores for {len(options)} answers")
            # Ties go to the answer that stopped by itself, then to the earliest sample (deterministic).
            best = max(range(len(options)), key=lambda j: (scores[j], options[j].stopped, -j))
            chosen = options[best]
            results.append(Completion(chosen.text, chosen.stopped, chosen.num_tokens,
                                      meta={**chosen.meta, "best_of": self.n, "chosen": best, "scores": scores}))
        return results
