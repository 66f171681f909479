"""One model-spec syntax for every place a recipe names a model.

    builtin:smollm2-135m-instruct       the embedded default (see builtin.py)
    ./checkpoints/sft  or  Qwen/Qwen2.5-7B-Instruct
                                        a local folder or a Hub id, loaded with transformers
    vllm:Qwen/Qwen2.5-7B-Instruct       the same, generated with the vLLM offline engine (extra [vllm])
    openai:http://127.0.0.1:8000/v1#llama-3.1-70b
                                        any OpenAI-compatible chat endpoint; the API key comes from the
                                        environment variable named by `api_key_env` (default
                                        OPENAI_API_KEY), never from the spec
    <any of the above>@best-of-8        sample 8 answers, keep the one a scorer ranks highest
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BEST_OF = re.compile(r"^(?P<inner>.+)@best-of-(?P<n>\d+)$")


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "builtin" | "hf" | "vllm" | "openai"
    location: str  # builtin name, folder or Hub id, or base URL
    served_name: str | None = None  # model name at an OpenAI-compatible endpoint
    best_of: int | None = None
    raw: str = ""

    @property
    def inner(self) -> "ModelSpec":
        """This spec without its best-of-n wrapper."""
        return ModelSpec(self.kind, self.location, self.served_name, None, self.raw.rsplit("@", 1)[0])


def parse_model_spec(text: str) -> ModelSpec:
    """Parse a model spec; a ValueError says what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"model spec must be a non-empty string, got {text!r}")
    raw = text = text.strip()
    best_of = None
    match = _BEST_OF.match(text)
    if match:
        text, best_of = match["inner"], int(match["n"])
        if best_of < 2:
            raise ValueError(f"model spec {raw!r}: best-of-n needs n >= 2")
    elif "@best-of" in text:
        raise ValueError(f"model spec {raw!r}: write the wrapper as '<model>@best-of-<n>', e.g. @best-of-8")

    if text.startswith("builtin:"):
        name = text.removeprefix("builtin:")
        from .builtin import BUILTIN_MODELS

        if name not in BUILTIN_MODELS:
            known = ", ".join(f"builtin:{n}" for n in BUILTIN_MODELS)
            raise ValueError(f"model spec {raw!r}: unknown builtin model; known: {known}")
        return ModelSpec("builtin", name, best_of=best_of, raw=raw)
    if text.startswith("openai:"):
        url, sep, name = text.removeprefix("openai:").partition("#")
        if not sep or not name:
            raise ValueError(f"model spec {raw!r}: expected 'openai:<base_url>#<model>'")
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"model spec {raw!r}: base URL must start with http:// or https://")
        return ModelSpec("openai", url.rstrip("/"), served_name=name, best_of=best_of, raw=raw)
    if text.startswith("vllm:"):
        location = text.removeprefix("vllm:")
        if not location:
            raise ValueError(f"model spec {raw!r}: expected 'vllm:<folder or Hub id>'")
        return ModelSpec("vllm", location, best_of=best_of, raw=raw)
    if re.match(r"^[a-z][a-z0-9+.-]*:(?!//)", text) and not text.startswith(("./", "/")):
        raise ValueError(f"model spec {raw!r}: unknown scheme; use builtin:, openai:, vllm:, a path or a Hub id")
    return ModelSpec("hf", text, best_of=best_of, raw=raw)
