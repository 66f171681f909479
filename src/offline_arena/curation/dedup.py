"""Duplicate prompts found and one of each group kept: exact copies after normalisation (case, punctuation,
spacing), then near copies by MinHash-LSH (datasketch; Broder 1997), as Arena Learning deduplicates its
276K prompts before splitting them into shards.

A prompt's shingles are its word `shingle`-grams (3 words: a reworded phrase in a long prompt stays a copy,
Jaccard 0.75, while one topic word swapped in a 15-word template makes another prompt, 0.6). Prompts are read
in file order: each is checked against the groups kept so far (an LSH query; each candidate is then confirmed
by the exact Jaccard similarity of the two shingle sets >= `threshold`, since LSH banding and the MinHash
estimate only approximate it) and either joins the most similar group or starts one of its own. A kept
prompt's shingles stay in memory as sorted 32-bit hashes (4 bytes a shingle), not as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .text import ngrams, normalised, words

DEFAULT_THRESHOLD = 0.7
DEFAULT_SHINGLE = 3
DEFAULT_NUM_PERM = 128
CHUNK = 4096


@dataclass
class DuplicateGroup:
    kept: int                                                # index of the prompt kept (the first in file order)
    dropped: list[int] = field(default_factory=list)         # indices of its copies
    kinds: list[str] = field(default_factory=list)           # "exact" or "near", per copy
    similarity: list[float] = field(default_factory=list)    # estimated Jaccard per copy (1.0 for exact)


@dataclass
class DedupResult:
    total: int
    kept: list[int]
    groups: list[DuplicateGroup]

    def dropped(self, kind: str | None = None) -> int:
        return sum(1 for g in self.groups for k in g.kinds if kind is None or k == kind)


def deduplicate(texts: Sequence[str], *, near: bool = True, threshold: float = DEFAULT_THRESHOLD,
                shingle: int = DEFAULT_SHINGLE, num_perm: int = DEFAULT_NUM_PERM, seed: int = 1,
                progress: bool = False) -> DedupResult:
    """Indices to keep and the duplicate groups of `texts` (exact copies, then near copies if `near`)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    if shingle < 1 or num_perm < 2:
        raise ValueError(f"shingle must be >= 1 and num_perm >= 2, got {shingle} and {num_perm}")
    groups: dict[int, DuplicateGroup] = {}
    first_of: dict[str, int] = {}
    unique: list[int] = []
    for index, text in enumerate(texts):
        key = normalised(text)
        first = first_of.setdefault(key, index)
        if first == index:
            unique.append(index)
        else:
            _join(groups, first, index, "exact", 1.0)
    if near and len(unique) > 1:
        _near_copies(texts, unique, groups, threshold, shingle, num_perm, seed, progress)
    dropped = {i for g in groups.values() for i in g.dropped}
    return DedupResult(len(texts), [i for i in range(len(texts)) if i not in dropped],
                       sorted(groups.values(), key=lambda g: g.kept))


def _join(groups: dict[int, DuplicateGroup], kept: int, copy: int, kind: str, similarity: float) -> None:
    group = groups.setdefault(kept, DuplicateGroup(kept))
    group.dropped.append(copy)
    group.kinds.append(kind)
    group.similarity.append(similarity)


def _shingle_hashes(text: str, shingle: int) -> np.ndarray:
    """The sorted, distinct 32-bit hashes of a text's word shingles (datasketch's default sha1_hash32)."""
    from datasketch.hashfunc import sha1_hash32

    return np.unique(np.fromiter((sha1_hash32(g.encode("utf-8")) for g in ngrams(words(text), shingle)), dtype=np.uint32))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted, distinct hash arrays."""
    union = len(a) + len(b)
    if not union:
        return 1.0
    both = len(np.intersect1d(a, b, assume_unique=True))
    return both / (union - both)


def _near_copies(texts, unique: list[int], groups, threshold, shingle, num_perm, seed, progress) -> None:
    from datasketch import LeanMinHash, MinHash, MinHashLSH
    from tqdm import tqdm

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept_shingles: dict[int, np.ndarray] = {}  # a kept prompt's index -> its shingle hashes
    bar = tqdm(total=len(unique), desc="near duplicates", unit="prompt", disable=not progress)
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start:start + CHUNK]
        shingles = [_shingle_hashes(texts[i], shingle) for i in chunk]
        minhashes = MinHash.bulk([s.tolist() for s in shingles], num_perm=num_perm, seed=seed, hashfunc=int)
        for index, hashes, minhash in zip(chunk, shingles, minhashes):
            best, best_similarity = None, -1.0
            for candidate in lsh.query(minhash):
                similarity = jaccard(kept_shingles[candidate], hashes)
                if similarity >= threshold and (similarity > best_similarity or
                                                (similarity == best_similarity and candidate < best)):
                    best, best_similarity = candidate, similarity
            if best is not None:
                _join(groups, best, index, "near", best_similarity)
            else:
                kept_shingles[index] = hashes
                lsh.insert(index, LeanMinHash(minhash), check_duplication=False)
        bar.update(len(chunk))
    bar.close()
