"""Models by name: parse a spec (see spec.py) and build its generator, cached through the run's store."""

from __future__ import annotations

from .base import Completion, GenerationRequest, SamplingParams  # noqa: F401  (the public interface)
from .spec import ModelSpec, named_specs, parse_model_spec  # noqa: F401


def resolve_local_path(spec: ModelSpec) -> str:
    """A folder (or Hub id) transformers can load for a builtin/hf/vllm spec."""
    if spec.kind == "builtin":
        from .builtin import materialise

        return str(materialise(spec.location))
    if spec.kind in ("hf", "vllm"):
        return spec.location
    raise ValueError(f"{spec.raw}: an OpenAI-compatible endpoint has no local weights")


def load_generator(spec: ModelSpec | str, store=None, scorer=None, scorer_name: str | None = None,
                   batch_size: int | None = None, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                   revision: str | None = None, chunk_size: int | None = None, deidentify: str = "off"):
    """Build the generator a spec names. With a store, every completion (and each best-of-n candidate)
    goes through it, so nothing is generated twice, and every `chunk_size` answers (default: two
    batches) are committed, which bounds what a crash can lose. A best-of-n spec needs a scorer.
    `batch_size`: the most rows of a transformers batch (None: as memory and lengths allow, models/hf.py).
    `deidentify` (a `privacy.deidentify` mode): an endpoint it covers is sent redacted prompts (under the
    store's cache, which keys them apart from raw ones)."""
    from .hf import MAX_ROWS

    chunk_size = chunk_size or 2 * (batch_size or MAX_ROWS)
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    if spec.revise:
        from .revise import Revise

        inner = load_generator(spec.inner, store, scorer=scorer, scorer_name=scorer_name, batch_size=batch_size,
                               api_key_env=api_key_env, concurrency=concurrency, revision=revision,
                               chunk_size=chunk_size, deidentify=deidentify)
        return _cached(Revise(inner), store, chunk_size)
    if spec.best_of:
        if scorer is None:
            raise ValueError(f"{spec.raw}: best-of-n needs a scorer (a verifier or judge) to pick the best answer")
        from .best_of_n import BestOfN

        inner = load_generator(spec.inner, store, batch_size=batch_size, api_key_env=api_key_env,
                               concurrency=concurrency, revision=revision, chunk_size=chunk_size,
                               deidentify=deidentify)
        best = BestOfN(inner, spec.best_of, scorer, scorer_name or getattr(scorer, "__name__", "scorer"))
        return _cached(best, store, chunk_size)

    if spec.kind == "openai":
        from .openai_http import OpenAIChatGenerator

        generator = OpenAIChatGenerator(spec.urls, spec.served_name, api_key_env=api_key_env,
                                        concurrency=concurrency, revision=revision)
        from ..privacy.policy import redacts_endpoint

        if redacts_endpoint(deidentify, spec):
            from ..privacy.wrappers import DeidentifyingGenerator

            generator = DeidentifyingGenerator(generator)
    elif spec.kind == "vllm":
        from .vllm_backend import VLLMGenerator

        generator = VLLMGenerator(spec.location)
    else:
        from .hf import TransformersGenerator

        fingerprint = None
        if spec.kind == "builtin":
            from .builtin import builtin_fingerprint

            fingerprint = builtin_fingerprint(spec.location)
        path = resolve_local_path(spec)
        # One copy of the weights per process: a target and its own best-of-n share them (for a 7B model
        # that is 15 GB not spent twice).
        generator = _LOADED.get((path, batch_size))
        if generator is None:
            generator = _LOADED[(path, batch_size)] = TransformersGenerator(path, fingerprint=fingerprint,
                                                                            batch_size=batch_size)
    return _cached(generator, store, chunk_size)


_LOADED: dict = {}


def _cached(generator, store, chunk_size: int):
    if store is None:
        return generator
    from .cached import CachedGenerator

    return CachedGenerator(generator, store, chunk_size)
