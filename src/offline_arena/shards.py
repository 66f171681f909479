"""Which prompts each stage and the evaluation get: fresh, disjoint shards. The built-in pack deals its own
(prompts/verifiable.py); a user's prompt file is split here."""

from __future__ import annotations

import functools
import random
from pathlib import Path

from .config import Recipe, stage_prompt_count
from .stage_kinds import KINDS, stage_kind

HELDOUT = "heldout"


def stage_prompts(recipe: Recipe, round_index: int, kind: str) -> list:
    """The fresh shard of one stage (disjoint from every other stage's and from held-out), each prompt with
    its length budget (`prompts/budget.py`) over the recipe's battle token limit, and without the prompts
    that hold an item of an evaluation set the recipe uses (`curation/recipe_checks.py`)."""
    return stage_shard(recipe, round_index, kind)[0]


def stage_shard(recipe: Recipe, round_index: int, kind: str) -> tuple[list, object]:
    """`stage_prompts` and what decontamination removed from the shard (None when nothing was checked)."""
    from .curation.recipe_checks import decontaminated
    from .prompts.budget import apply_budgets

    slot = stage_kind(kind).prompt_slot
    if slot is None:
        raise ValueError(f"a {kind} stage takes no prompts")
    prompts, removed = decontaminated(recipe, _split(recipe, f"round{round_index}/{slot}", stage_prompt_count(recipe, kind)))
    return apply_budgets(prompts, recipe.generation.max_new_tokens, recipe.generation.max_budget), removed


@functools.lru_cache(maxsize=4)
def _prompt_file(source: str, *version) -> tuple:
    """A prompt file parsed once per version, not once per split (preflight and a run deal every split;
    a reference-scale file holds 272K prompts). `version` (mtime, size) makes an edited file parse anew."""
    from .prompts import load_prompts

    return tuple(load_prompts(source))


def _version(source: str) -> tuple:
    path = Path(source.partition("::")[0])
    try:
        stat = path.stat()
    except OSError:
        return ()
    return (stat.st_mtime_ns, stat.st_size)


def heldout_prompts(recipe: Recipe) -> list:
    """The held-out split, each prompt with its length budget over the evaluation's token limit."""
    from .prompts.budget import apply_budgets

    floor = recipe.evaluation.max_new_tokens or recipe.generation.max_new_tokens
    return apply_budgets(_split(recipe, HELDOUT, recipe.prompts.heldout), floor, recipe.generation.max_budget)


def _split(recipe: Recipe, split: str, n: int) -> list:
    source = recipe.prompts.source
    if source == "builtin:verifiable":
        from .prompts.verifiable import load_verifiable

        p = recipe.prompts
        prompts = load_verifiable(split, n, recipe.seed, short_answers=p.short_answers, constraint_ids=p.constraints,
                                  min_constraints=p.min_constraints, max_constraints=p.max_constraints,
                                  phrasings=p.phrasings, constraint_weights=p.constraint_weights)
    else:
        prompts = file_split(source, split, n, recipe)
    if recipe.privacy.deidentify == "all":  # nothing downstream ever sees the raw text (privacy/policy.py)
        from .privacy.wrappers import redact_prompt

        prompts = [redact_prompt(p) for p in prompts]
    return prompts


def file_slots(recipe: Recipe) -> list[tuple[str, int]]:
    """(split, size) of a prompt file's shards in dealing order: held-out first, then round by round the
    recipe's stages that take prompts, in the table's order. Only the stages that run take prompts: a file
    of Arena Learning's size (276K prompts, 9 stages of ~30K) is dealt whole, not into slots for kinds the
    run never has, nor for a stage in a round it skips. Held-out and round 1's first stage are the same for
    every recipe over a file."""
    def kinds(round_index: int) -> list:
        running = {s.kind for s in recipe.stages_in_round(round_index)}
        return [k for k in KINDS.values() if k.prompt_slot is not None and k.name in running]

    return [(HELDOUT, recipe.prompts.heldout)] + [
        (f"round{r}/{k.prompt_slot}", stage_prompt_count(recipe, k.name)) for r in range(1, recipe.rounds + 1)
        for k in kinds(r)]


def file_split(source: str, split: str, n: int, recipe: Recipe) -> list:
    """One shard of a user's prompt file: a seeded shuffle, then the slots of `file_slots` in order."""
    prompts = _prompt_file(source, *_version(source))
    order = list(range(len(prompts)))
    random.Random(recipe.seed).shuffle(order)
    start = 0
    for slot, size in file_slots(recipe):
        if slot == split:
            if start + size > len(prompts):
                raise ValueError(f"{source}: {len(prompts)} prompts cannot fill split {split!r} "
                                 f"({size} prompts after {start} used by earlier splits)")
            return [prompts[i] for i in order[start:start + size]][:n]
        start += size
    raise ValueError(f"unknown split {split!r}")
