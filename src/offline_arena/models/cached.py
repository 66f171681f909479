"""Generation through the store: only requests whose key is not stored yet reach the model, and each
chunk is committed as soon as it is generated, so a killed run loses at most the chunks in flight."""

from __future__ import annotations

from typing import Sequence

from ..store import Store, completion_key
from .base import Completion, GenerationRequest


class CachedGenerator:
    def __init__(self, inner, store: Store, chunk_size: int = 32):
        self.inner, self.store, self.chunk_size = inner, store, chunk_size
        self.fingerprint = inner.fingerprint

    def render(self, messages) -> str:
        return self.inner.render(messages)

    def keys(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return [completion_key(self.fingerprint, self.render(r.messages), r.params, r.seed, r.sample_index)
                for r in requests]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        keys = self.keys(requests)
        found = self.store.get_completions(keys)
        missing: dict[str, GenerationRequest] = {}
        for key, request in zip(keys, requests):
            if key not in found:
                missing.setdefault(key, request)  # identical requests in one call are generated once
        todo = list(missing.items())
        chunks = [todo[start:start + self.chunk_size] for start in range(0, len(todo), self.chunk_size)]
        for index, completions in self._generated(chunks):
            chunk = chunks[index]
            self.store.put_completions([
                (key, self.fingerprint, self.render(r.messages), r.params, r.seed, r.sample_index, c)
                for (key, r), c in zip(chunk, completions)
            ])
            found.update({key: c for (key, _), c in zip(chunk, completions)})
        return [found[key] for key in keys]

    def _generated(self, chunks):
        """(chunk index, completions) as each chunk is done: one after another in this process, or, for a
        backend that fans chunks out (models/ray_pool.py), in the order its workers finish them. Either
        way the chunks are the same, so are the answers, and each is committed here, by the driver."""
        requests = [[request for _, request in chunk] for chunk in chunks]
        fan_out = getattr(self.inner, "generate_chunks", None)
        if fan_out is not None:
            yield from fan_out(requests)
            return
        for index, chunk in enumerate(requests):
            yield index, self.inner.generate(chunk)
