"""What `arena run` does with curation before any battle: each training shard checked against every
evaluation set the recipe uses (`evaluation.suites`), a prompt that holds an evaluation item dropped from its
shard, and a held-out split that overlaps training refused unless the recipe allows it."""

from __future__ import annotations

import functools
from typing import Sequence

from .decontaminate import Decontamination, EvalIndex, Match, decontaminate, parse_rule
from .eval_sets import EVAL_SETS, EvalItem, load_eval_set
from .text import prompt_text


def eval_set_names(recipe) -> list[str]:
    """The evaluation sets the recipe scores checkpoints on (its held-out split is checked apart)."""
    return [name for name in recipe.evaluation.suites if name in EVAL_SETS]


@functools.lru_cache(maxsize=4)
def _index(names: tuple[str, ...], rules: tuple[str, ...]) -> EvalIndex:
    return EvalIndex([item for name in names for item in load_eval_set(name)], [parse_rule(r) for r in rules])


def decontaminated(recipe, prompts: Sequence) -> tuple[list, Decontamination | None]:
    """A training shard without the prompts that hold an item of the recipe's evaluation sets, and what was
    removed (None when the recipe checks nothing: no such set, or `prompts.decontaminate: false`)."""
    names = eval_set_names(recipe)
    if not recipe.prompts.decontaminate or not names:
        return list(prompts), None
    result = decontaminate(prompts, _index(tuple(names), tuple(recipe.prompts.decontaminate_rules)))
    return [prompts[i] for i in result.kept], result


# Held-out against training: Tulu 3's rule alone. A prompt set's task templates ("Write three questions the
# patient could ask their doctor about this clinical note:" is 13 words) put the same 13-gram in prompts that
# ask about different documents; more than half of a held-out prompt's 8-grams is a copy of the prompt.
HELDOUT_RULE = "8:0.5"


def heldout_overlap(recipe, heldout: Sequence, training: Sequence) -> list[Match]:
    """Training prompts that hold more than half of a held-out prompt's 8-grams; empty when the recipe allows it."""
    if recipe.prompts.heldout_overlap == "allow" or not heldout or not training:
        return []
    index = EvalIndex([EvalItem("heldout", p.id, prompt_text(p)) for p in heldout], [parse_rule(HELDOUT_RULE)])
    return decontaminate(training, index).removed
