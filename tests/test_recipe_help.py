"""`arena fields`: the recipe's help is read from its schema, and the extras from the installed trainers."""

import pytest

from offline_arena.cli import main
from offline_arena.config import Train
from offline_arena.recipe_help import describe_extras, describe_section


def test_every_field_of_a_section_with_its_description_and_default():
    text = describe_section("train")
    assert text.startswith("stages.train (Train)")
    for name, field in Train.model_fields.items():
        line = next(line for line in text.splitlines() if line.split()[:1] == [name])
        assert f"default {field.get_default(call_default_factory=True)!r}" in line or "{...}" in line
    assert Train.model_fields["runaway_tolerance"].description.split()[0] in text
    assert "list[Opponent]" in describe_section("")  # not offline_arena.config.Opponent


def test_an_unknown_section_names_the_sections_there_are(capsys):
    with pytest.raises(ValueError, match=r"'gen' is not a section of the recipe; its sections: evaluation, generation"):
        describe_section("gen")
    assert main(["fields", "stages.train.lr"]) == 2
    assert "'lr' is not a section of stages.train" in capsys.readouterr().err


def test_extras_list_the_trainers_own_fields():
    dpo = describe_extras("dpo")
    assert "\n  beta " in dpo and "trl.DPOConfig" in dpo
    assert "\n  learning_rate " not in dpo  # a TrainingArguments field: the recipe's train section sets it
    ppo = describe_extras("rm_ppo", "ppo")
    assert "\n  minibatch_size " in ppo and "\n  steps " not in ppo  # steps is a recipe field of ppo
    assert "takes no extras" in describe_extras("merge")
    with pytest.raises(ValueError, match="unknown stage kind 'dpoo'"):
        describe_extras("dpoo")
