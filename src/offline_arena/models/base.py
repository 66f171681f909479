"""The one interface every generation backend implements: chat messages in, completions out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator, Protocol, Sequence

# The records and keys below every layer, where the store and the records read them; named here too, as
# every backend and caller has always imported them from this module.
from ..keys import canonical_json, content_key, seed_from  # noqa: F401
from ..records import Completion, SamplingParams  # noqa: F401

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(frozen=True)
class GenerationRequest:
    """One completion to produce. `(seed, sample_index)` tell apart several samples of one prompt."""

    messages: tuple[Message, ...]
    params: SamplingParams = SamplingParams()
    seed: int = 0
    sample_index: int = 0
    # What scorers may need about the prompt (e.g. its checkable constraints). Not part of the cache
    # key: it does not change what the model is asked.
    context: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, messages: Sequence[Message], **kwargs) -> "GenerationRequest":
        return cls(messages=tuple(dict(m) for m in messages), **kwargs)

    def __hash__(self):  # messages hold dicts; hash their canonical JSON
        return hash((canonical_json(list(self.messages)), self.params, self.seed, self.sample_index))

    @property
    def sampling_seed(self) -> int:
        """The seed a backend that seeds each request (an endpoint, vLLM) samples this one with: distinct for
        each (seed, sample_index), so n samples of one prompt differ and a rerun draws the same ones."""
        return self.seed * 100_003 + self.sample_index


class Generator(Protocol):
    """A model that answers chat requests. Implementations: transformers, OpenAI-compatible HTTP,
    vLLM, and the wrappers (best-of-n, store-cached)."""

    fingerprint: str  # identifies the weights (and wrapper settings): part of every cache key

    def render(self, messages: Sequence[Message]) -> str:
        """The exact prompt the model sees (its chat template applied), used in the cache key."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """One completion per request, in order."""


def chunks_as_done(generator, chunks: Sequence[Sequence[GenerationRequest]]) -> Iterator[tuple[int, list[Completion]]]:
    """(chunk index, completions) for every chunk: from the generator's own `generate_chunks` when it has
    one (an endpoint answering chunks together, a pool of Ray actors), in the order they finish; else
    one after another through `generate`."""
    fan_out = getattr(generator, "generate_chunks", None)
    if fan_out is not None:
        yield from fan_out(chunks)
        return
    for index, chunk in enumerate(chunks):
        yield index, generator.generate(chunk)


def is_remote(component) -> bool:
    """Whether a generator's or a judge's work is done elsewhere (servers behind an endpoint, Ray actors),
    so that this process only waits on it and may run several such at once. Wrappers (the store's cache,
    de-identification, an LLM judge around its generator) are as remote as what they wrap."""
    seen = set()
    while component is not None and id(component) not in seen:
        seen.add(id(component))
        if getattr(component, "remote", False):
            return True
        component = getattr(component, "inner", None) or getattr(component, "generator", None)
    return False


def validate_messages(messages: Sequence[Message], where: str = "messages") -> None:
    """Raise ValueError naming `where` when messages are not a non-empty list of role/content dicts."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError(f"{where}: expected a non-empty list of messages, got {type(messages).__name__}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"{where}[{i}]: expected an object with 'role' and 'content'")
        if m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"{where}[{i}].role: expected system/user/assistant, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"{where}[{i}].content: expected a string")
    if messages[-1]["role"] == "assistant":
        raise ValueError(f"{where}: the last message is the assistant's; nothing is left to answer")


def independent_request(request: GenerationRequest, wrapper: str) -> GenerationRequest:
    """The request a wrapper (best-of-n, revise) samples its own drafts with: a seed that is a stable
    function of the request's seed and the wrapper's name, so a wrapper's samples never share a cache key
    with the plain model's answers. Greedy requests keep their seed: their answer does not depend on it,
    and a greedy draft is the model's greedy answer, generated once."""
    if request.params.temperature == 0:
        return request
    return replace(request, seed=seed_from(f"{wrapper}|{request.seed}"))
