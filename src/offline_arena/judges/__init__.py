"""Judges by name: `load_judge` builds the judge a spec names (the syntax: judges/spec.py)."""

from __future__ import annotations

from .base import Judge, Matchup, Verdict, judge_battles  # noqa: F401
from .spec import JudgeSpec, parse_judge_spec  # noqa: F401
from .verifier import VerifierJudge, verifier_scorer

# Best-of-n scorers by name (see models/best_of_n.py).
SCORERS = {"verifier": verifier_scorer}


def load_judge(spec: str | JudgeSpec, store=None, **generator_options) -> Judge:
    spec = spec if isinstance(spec, JudgeSpec) else parse_judge_spec(spec)
    if spec.kind == "verifier":
        return VerifierJudge(loose=spec.loose, rule=spec.rule)
    if spec.asks_a_model:
        from ..models import load_generator

        generator = load_generator(spec.model, store=store, **generator_options)
        if spec.kind == "score":
            from .single_score import SingleScoreJudge

            return SingleScoreJudge(generator)
        from .llm_pairwise import PairwiseJudge

        return PairwiseJudge(generator, scale="mt-bench" if spec.kind == "pairwise" else "arena-hard")
    from .reward_model import RewardModelJudge

    return RewardModelJudge(spec.model)


def load_scorer(name: str):
    if name not in SCORERS:
        raise ValueError(f"unknown best-of-n scorer {name!r}; known: {sorted(SCORERS)}")
    return SCORERS[name]
