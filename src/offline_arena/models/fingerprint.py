"""Fingerprints of local model folders: cheap enough to compute on every load of a 70B checkpoint,
and different whenever the weights, config, tokenizer or chat template differ; and the dtype a model
computes in, which is part of what its answers are keyed by."""

from __future__ import annotations

import hashlib
from pathlib import Path

_TEXT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja", "special_tokens_map.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_EDGE = 1 << 20  # bytes read from each end of a weight file


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over the small text files in full, and over each weight file's name, size and first and
    last MiB. Reading every byte of a 140 GB checkpoint on each load would be too slow; a fine-tune
    that changes weights changes these edges too (every shard holds many tensors), and training in
    this project always writes fresh files."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for name in _TEXT_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    weights = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    if not weights:
        raise FileNotFoundError(f"{folder}: no weight files (*.safetensors, *.bin) found")
    for path in weights:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as f:
            digest.update(f.read(_EDGE))
            if size > 2 * _EDGE:
                f.seek(size - _EDGE)
                digest.update(f.read(_EDGE))
    return digest.hexdigest()[:16]


def keyed_by_dtype(fingerprint: str, dtype: str) -> str:
    """The fingerprint a model's answers are keyed by when it computes in `dtype`: other numbers, other
    answers, so no dtype reads another's from the store, whatever the device (a float32 override on a GPU
    must not read its bf16 answers). float32 keeps the plain fingerprint and bf16 adds ":bf16", the keys
    CPU runs have always had."""
    if dtype == "float32":
        return fingerprint
    return f"{fingerprint}:bf16" if dtype == "bfloat16" else f"{fingerprint}:{dtype}"
