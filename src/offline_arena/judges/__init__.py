"""Judges by name. A judge spec is one of:

    verifier | verifier:loose        the prompt's checkable constraints (no model); equal counts are
                                     graded by loose passes, closeness, then stopping (`:complete-wins-ties`,
                                     `:count-only` for the older rules; judges/verifier.py)
    pairwise:<model spec>            LLM pairwise, MT-Bench verdicts A / B / tie, both orders
    pairwise-arena-hard:<model spec> LLM pairwise, Arena-Hard's five-level verdicts, both orders
    score:<model spec>               LLM single-answer grading 1-10 (reference answer if the prompt has one)
    rm:<folder>                      a reward model (sequence classification, one output)
"""

from __future__ import annotations

from .base import Judge, Matchup, Verdict, judge_battles  # noqa: F401
from .verifier import VerifierJudge, verifier_scorer

# Best-of-n scorers by name (see models/best_of_n.py).
SCORERS = {"verifier": verifier_scorer}


def load_judge(spec: str, store=None, **generator_options) -> Judge:
    kind, _, target = spec.partition(":")
    if kind == "verifier":
        from .verifier import RULES

        options = [o for o in target.split(":") if o]
        rules = [o for o in options if o in RULES]
        if (any(o not in ("strict", "loose", *RULES) for o in options) or {"strict", "loose"} <= set(options)
                or len(rules) > 1):
            raise ValueError(f"judge {spec!r}: expected verifier[:strict|:loose][:graded|:complete-wins-ties|:count-only]")
        return VerifierJudge(loose="loose" in options, rule=rules[0] if rules else "graded")
    if kind in ("pairwise", "pairwise-arena-hard", "score"):
        if not target:
            raise ValueError(f"judge {spec!r}: expected {kind}:<model spec>, e.g. {kind}:openai:http://host/v1#name")
        from ..models import load_generator

        generator = load_generator(target, store=store, **generator_options)
        if kind == "score":
            from .single_score import SingleScoreJudge

            return SingleScoreJudge(generator)
        from .llm_pairwise import PairwiseJudge

        return PairwiseJudge(generator, scale="mt-bench" if kind == "pairwise" else "arena-hard")
    if kind == "rm":
        from .reward_model import RewardModelJudge

        return RewardModelJudge(target)
    raise ValueError(f"unknown judge {spec!r}; expected verifier, pairwise:<model>, pairwise-arena-hard:<model>, "
                     "score:<model> or rm:<folder>")


def load_scorer(name: str):
    if name not in SCORERS:
        raise ValueError(f"unknown best-of-n scorer {name!r}; known: {sorted(SCORERS)}")
    return SCORERS[name]
