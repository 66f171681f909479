"""Models: the generator interface (base.py), specs (spec.py) and where a spec's weights are.

Building the generator a spec names, with its wrappers, is `offline_arena.loading.load_generator`."""

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
