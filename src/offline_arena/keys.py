"""Content keys and seeds: the one spelling of every content-addressed key (cached answers, judgments,
battles, prompt ids, training-data digests) and of every seed derived from content, at the bottom of the
house so the store, the records and the models all read the same rules."""

from __future__ import annotations

import hashlib
import json


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
