"""What a prompt file holds, before it is trained on: counts, lengths, languages, duplicates and overlap with
each known evaluation set (`arena prompts stats`)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Sequence

import numpy as np

from .text import prompt_text, words

LANGUAGE_SAMPLE = 1000  # langdetect takes ~5 ms a prompt: a seeded sample, not 276K of them


def prompt_stats(prompts: Sequence, *, dedup=None, decontamination=None, seed: int = 0) -> dict:
    texts = [prompt_text(p) for p in prompts]
    lengths = np.array([len(words(t)) for t in texts]) if texts else np.zeros(1)
    turns = Counter(sum(1 for m in p.messages if m.get("role") == "user") for p in prompts)
    sample = random.Random(seed).sample(range(len(texts)), min(LANGUAGE_SAMPLE, len(texts)))
    stats = {
        "prompts": len(prompts),
        "with_constraints": sum(1 for p in prompts if (p.meta or {}).get("constraints")),
        "user_turns": dict(sorted(turns.items())),
        "words": {"min": int(lengths.min()), "median": float(np.median(lengths)), "mean": float(lengths.mean()),
                  "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max())},
        "languages": {"sampled": len(sample), "counts": dict(Counter(_language(texts[i]) for i in sample).most_common())},
    }
    if dedup is not None:
        stats["duplicates"] = {"exact": dedup.dropped("exact"), "near": dedup.dropped("near"),
                               "groups": len(dedup.groups)}
    if decontamination is not None:
        stats["overlap"] = decontamination.counts()
    return stats


def _language(text: str) -> str:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect samples; seeded, the same text gets the same answer
    try:
        return detect(text)
    except LangDetectException:  # no letters to go by (numbers, code, emoji)
        return "unknown"


def format_stats(stats: dict, source: str) -> str:
    w = stats["words"]
    lines = [f"{source}: {stats['prompts']} prompts ({stats['with_constraints']} with checkable constraints)",
             "  user turns: " + ", ".join(f"{k}: {v}" for k, v in stats["user_turns"].items()),
             f"  words: min {w['min']}, median {w['median']:.0f}, mean {w['mean']:.1f}, 95th percentile "
             f"{w['p95']:.0f}, max {w['max']}",
             f"  languages (a sample of {stats['languages']['sampled']}): " +
             ", ".join(f"{k} {v}" for k, v in stats["languages"]["counts"].items())]
    if "duplicates" in stats:
        d = stats["duplicates"]
        lines.append(f"  duplicates: {d['exact']} exact and {d['near']} near copies in {d['groups']} groups")
    if "overlap" in stats:
        overlap = stats["overlap"]
        lines.append("  overlap with evaluation sets: " +
                     (", ".join(f"{k} {v}" for k, v in sorted(overlap.items())) if overlap else "none"))
    return "\n".join(lines)
