"""Generation through the store: only requests whose key is not stored yet reach the model, and each
chunk is committed as soon as it is generated, so a killed run loses at most the chunks in flight. The
cache shows the progress of the whole call (the model behind it sees one chunk at a time)."""

from __future__ import annotations

from typing import Sequence

from ..progress import progress_bar
from ..store import Store, completion_key
from .base import Completion, GenerationRequest, chunks_as_done


class CachedGenerator:
    def __init__(self, inner, store: Store, chunk_size: int = 32):
        self.inner, self.store, self.chunk_size = inner, store, chunk_size
        self.fingerprint = inner.fingerprint
        self.progress = True
        if hasattr(inner, "progress"):  # one bar per call, here, not one per chunk behind it
            inner.progress = False

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
        with progress_bar(len(todo), f"generate {_short_name(self.fingerprint)}", "answer", self.progress) as bar:
            for index, completions in chunks_as_done(self.inner, [[r for _, r in chunk] for chunk in chunks]):
                # Committed here, by the caller, as each chunk is done: in order in this process, or in the
                # order an endpoint or Ray's workers finish them. Either way the chunks, and so the answers,
                # are the same.
                chunk = chunks[index]
                self.store.put_completions([
                    (key, self.fingerprint, self.render(r.messages), r.params, r.seed, r.sample_index, c)
                    for (key, r), c in zip(chunk, completions)
                ])
                found.update({key: c for (key, _), c in zip(chunk, completions)})
                bar.update(len(chunk))
        return [found[key] for key in keys]


def _short_name(fingerprint: str) -> str:
    """'hf:checkpoint:3f2a...' -> 'checkpoint'; a wrapper's fingerprint keeps the wrapper, without its
    version, so its bar is told apart from the bar of the model behind it (a `@revise` call shows the
    drafts' bar and its own): 'builtin:smollm2-135m-instruct:b179...:bf16@revise[v3]' ->
    'smollm2-135m-instruct@revise'."""
    model, *wrappers = fingerprint.split("@")
    parts = model.split(":")
    name = parts[1] if len(parts) > 2 and parts[0] in ("hf", "builtin", "vllm", "openai") else model
    name += "".join("@" + w.split("[")[0] for w in wrappers)
    return name if len(name) <= 48 else name[:45] + "..."
