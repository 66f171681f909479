"""Judges: the interface (base.py), the spec syntax (spec.py), the verifier and best-of-n scorers by name.

Building the judge a spec names is `offline_arena.loading.load_judge`."""

from __future__ import annotations

from .base import Judge, Matchup, Verdict, judge_battles  # noqa: F401
from .spec import JudgeSpec, parse_judge_spec  # noqa: F401
from .verifier import VerifierJudge, verifier_scorer  # noqa: F401

# Best-of-n scorers by name (see models/best_of_n.py).
SCORERS = {"verifier": verifier_scorer}


def load_scorer(name: str):
    if name not in SCORERS:
        raise ValueError(f"unknown best-of-n scorer {name!r}; known: {sorted(SCORERS)}")
    return SCORERS[name]
