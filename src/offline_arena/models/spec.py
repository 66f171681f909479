"""One model-spec syntax for every place a recipe names a model.

    builtin:smollm2-135m-instruct       the embedded default (see builtin.py)
    ./checkpoints/sft  or  Qwen/Qwen2.5-7B-Instruct
                                        a local folder or a Hub id, loaded with transformers
    vllm:Qwen/Qwen2.5-7B-Instruct       the same, generated with the vLLM offline engine (extra [vllm])
    openai:http://127.0.0.1:8000/v1#llama-3.1-70b
                                        any OpenAI-compatible chat endpoint; the API key comes from the
                                        environment variable named by `api_key_env` (default
                                        OPENAI_API_KEY), never from the spec
    openai:http://h1:8001/v1,http://h2:8001/v1#llama-3.1-70b
                                        replicas of one served model (vLLM's --data-parallel-size, several
                                        hosts): base URLs joined by commas, each comma followed by the next
                                        URL's http:// or https://, so a comma inside a URL (a query string)
                                        stays part of it. Each request goes to the least-loaded healthy
                                        replica (models/openai/router.py); the cache keys name the served model,
                                        not the replicas, so a run resumes unchanged on 1 replica or 3
    <any of the above>@best-of-8        sample 8 answers, keep the one a scorer ranks highest
    <any of the above>@revise           the model's answer repaired to meet the prompt's checkable
                                        constraints (prompts/revise.py); may follow @best-of-N
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import urlsplit

_BEST_OF = re.compile(r"^(?P<inner>.+)@best-of-(?P<n>\d+)$")
# A comma starts another replica only where the next URL's scheme follows it: commas are legal inside a URL.
_NEXT_REPLICA = re.compile(r"\s*,\s*(?=https?://)")
REVISE_SUFFIX = "@revise"


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "builtin" | "hf" | "vllm" | "openai"
    location: str  # builtin name, folder or Hub id, or base URL(s): replicas joined by ","
    served_name: str | None = None  # model name at an OpenAI-compatible endpoint
    best_of: int | None = None
    raw: str = ""
    revise: bool = False  # the outermost wrapper: answers repaired against the prompt's constraints

    @property
    def inner(self) -> "ModelSpec":
        """This spec without its outermost wrapper (@revise, else @best-of-n)."""
        if self.revise:
            return ModelSpec(self.kind, self.location, self.served_name, self.best_of,
                             self.raw.removesuffix(REVISE_SUFFIX))
        return ModelSpec(self.kind, self.location, self.served_name, None, self.raw.rsplit("@", 1)[0])

    @property
    def urls(self) -> tuple[str, ...]:
        """An openai spec's base URLs, one per replica, in the spec's order."""
        if self.kind != "openai":
            raise ValueError(f"{self.raw}: only an openai: spec has base URLs")
        return split_base_urls(self.location)

    @property
    def leaves_the_machine(self) -> bool:
        """Whether answering sends the prompts to another host: an endpoint with any replica that is not
        loopback (a request may go to any of them). Wrappers ask the model they wrap (`x@best-of-4` asks x)."""
        spec = self
        while spec.wrapped:
            spec = spec.inner
        return spec.kind == "openai" and any(not is_loopback(urlsplit(url).hostname) for url in spec.urls)

    @property
    def wrapped(self) -> bool:
        """Whether answers come through a wrapper (best-of-n, revise) rather than from the model alone."""
        return bool(self.best_of or self.revise)


def parse_model_spec(text: str) -> ModelSpec:
    """Parse a model spec; a ValueError says what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"model spec must be a non-empty string, got {text!r}")
    raw = text = text.strip()
    if text.endswith(REVISE_SUFFIX):
        inner = parse_model_spec(text.removesuffix(REVISE_SUFFIX))
        if inner.revise:
            raise ValueError(f"model spec {raw!r}: @revise appears twice")
        return ModelSpec(inner.kind, inner.location, inner.served_name, inner.best_of, raw, revise=True)
    if "@revise" in text:
        raise ValueError(f"model spec {raw!r}: @revise must come last, e.g. <model>@best-of-4@revise")
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
        urls = split_base_urls(url)
        for one in urls:
            if not re.match(r"^https?://[^\s/]+\S*(?<!,)$", one):
                raise ValueError(f"model spec {raw!r}: base URL {one!r} must start with http:// or https://"
                                 " (several replicas: 'openai:http://h1/v1,http://h2/v1#<model>')")
        if len(set(urls)) < len(urls):
            raise ValueError(f"model spec {raw!r}: a replica's URL appears twice")
        return ModelSpec("openai", ",".join(urls), served_name=name, best_of=best_of, raw=raw)
    if text.startswith("vllm:"):
        location = text.removeprefix("vllm:")
        if not location:
            raise ValueError(f"model spec {raw!r}: expected 'vllm:<folder or Hub id>'")
        return ModelSpec("vllm", location, best_of=best_of, raw=raw)
    if re.match(r"^[a-z][a-z0-9+.-]*:(?!//)", text) and not text.startswith(("./", "/")):
        raise ValueError(f"model spec {raw!r}: unknown scheme; use builtin:, openai:, vllm:, a path or a Hub id")
    return ModelSpec("hf", text, best_of=best_of, raw=raw)


def split_base_urls(text: str) -> tuple[str, ...]:
    """`http://h1/v1,http://h2/v1` -> the replicas' base URLs (no trailing slash); one URL -> a 1-tuple."""
    return tuple(url.rstrip("/") for url in _NEXT_REPLICA.split(text.strip()))


def named_specs(items: Sequence[str], what: str = "--opponents") -> dict[str, str]:
    """`NAME=SPEC` or a bare `SPEC` (named by itself) -> {name: spec}, as the CLI's --models and
    --opponents take them. `what` names the option in errors."""
    named: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or "://" in name:  # `openai:http://h/v1?a=b#m` has no name part even if its URL holds '='
            name, spec = item, item
        if name in named:
            raise ValueError(f"{what}: the name {name!r} is used twice")
        named[name] = spec
    return named


def is_loopback(host: str | None) -> bool:
    """localhost or a loopback address; a name that is not "localhost" could resolve anywhere, so it is not."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
