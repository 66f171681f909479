"""The one interface every generation backend implements: chat messages in, completions out."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Iterator, Protocol, Sequence

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k truncation

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    def to_dict(self) -> dict:
        return asdict(self)


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


@dataclass
class Completion:
    """A generated answer. `stopped` is True when the model ended its turn by itself, False when it
    ran into the token limit (a *runaway*)."""

    text: str
    stopped: bool
    num_tokens: int
    meta: dict = field(default_factory=dict)


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


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_key(obj) -> str:
    """The hex SHA-256 of `obj`'s canonical JSON: the one spelling of every content-addressed key (cached
    answers, judgments, battles, prompt ids, training-data digests), so equal content always meets itself."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def seed_from(material: str) -> int:
    """A 32-bit seed that is a stable function of `material` (its SHA-256, little-endian): the same in every
    process and on every machine, unlike Python's hash()."""
    return int.from_bytes(hashlib.sha256(material.encode()).digest()[:4], "little")


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
