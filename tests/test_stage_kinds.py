"""The stage-kind table is the one definition the schema, the plan, the dealer and the pipeline read; trainer
settings take their defaults from the recipe schema."""

import pytest

from offline_arena.config import PPO, Recipe, Train
from offline_arena.shards import file_slots
from offline_arena.prompts.verifiable import SHARD_SLOTS
from offline_arena.stage_kinds import KINDS, STAGE_KINDS, order_rule
from offline_arena.train.common import TrainSettings
from offline_arena.train.ppo import PPOSettings


def test_every_kind_takes_a_pack_slot_of_its_own():
    slots = [k.prompt_slot for k in KINDS.values() if k.prompt_slot is not None]
    assert set(slots) <= set(SHARD_SLOTS) and len(slots) == len(set(slots))
    from offline_arena.pipeline.stage_runners import RUNNERS, StageRunner

    # Every kind that trains has its runner (builder and trainer adapter) beside the pipeline; a merge has none.
    assert {name for name, k in KINDS.items() if k.trains} == set(RUNNERS) and "merge" not in RUNNERS
    assert all(isinstance(r, StageRunner) for r in RUNNERS.values())


def test_the_recipe_schema_never_imports_the_trainers():
    """The declarative table imports nothing of the package, so the schema (config.py) that reads it is
    never tied to the trainers, which read the schema's defaults: no import circle."""
    import subprocess
    import sys

    code = ("import sys, offline_arena.config; "
            "print(sorted(m for m in sys.modules if m.startswith(('offline_arena.train', 'offline_arena.pipeline'))))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_the_schema_and_the_order_rule_come_from_the_table():
    opponents = [{"name": "o", "model": "builtin:smollm2-135m-instruct"}]
    for kind in STAGE_KINDS:  # every kind the table has is a valid stage
        stage = {"kind": kind, **({"teacher": "builtin:smollm2-135m-instruct"} if kind == "distill" else {})}
        Recipe.model_validate({"opponents": opponents, "stages": [stage]})
    assert order_rule() == "sft/distill before dpo/kto before rm_ppo/grpo"
    with pytest.raises(ValueError, match="bad stage order"):
        Recipe.model_validate({"opponents": opponents, "stages": [{"kind": "grpo"}, {"kind": "kto"}]})


def test_a_prompt_file_is_dealt_to_the_recipes_stages_in_table_order():
    """Held-out first, then each round's stages in the table's order (whatever order the recipe lists
    them in), and only those: no prompts are held back for kinds the run never has."""
    recipe = Recipe.model_validate({"opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
                                    "stages": [{"kind": "sft", "prompts": 5}, {"kind": "rm_ppo"}, {"kind": "merge"}],
                                    "rounds": 2, "prompts": {"per_stage": 7, "heldout": 3}})
    assert file_slots(recipe) == [("heldout", 3), ("round1/sft", 5), ("round1/rm", 7), ("round2/sft", 5),
                                  ("round2/rm", 7)]
    # so a run given more rounds later keeps the shards its first rounds were dealt
    assert file_slots(recipe.model_copy(update={"rounds": 1})) == file_slots(recipe)[:3]


def test_trainer_settings_default_to_the_recipes_defaults_and_copy_a_recipe():
    train = Train()
    defaults = TrainSettings()
    for name in set(Train.model_fields) & {f for f in vars(defaults)}:
        assert getattr(defaults, name) == getattr(train, name), name
    ppo, ppo_defaults = PPO(), PPOSettings()
    for name in set(PPO.model_fields) & set(vars(ppo_defaults)):
        assert getattr(ppo_defaults, name) == getattr(ppo, name), name
    assert ppo_defaults.adaptive_kl == (ppo.target_kl is not None)

    custom = TrainSettings.from_recipe(Train(learning_rate=3e-4, lora=True, probe_prompts=5), seed=7)
    assert (custom.learning_rate, custom.lora, custom.probe_prompts, custom.seed) == (3e-4, True, 5, 7)
    fixed = PPOSettings.from_recipe(PPO(target_kl=None, steps=2, extra={"ppo_epochs": 3}), Train(lora=True), seed=1)
    assert (fixed.adaptive_kl, fixed.steps, fixed.ppo_epochs, fixed.lora, fixed.seed) == (False, 2, 3, True, 1)
