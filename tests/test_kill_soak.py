"""A run SIGKILLed at random moments and resumed each time ends exactly where an uninterrupted run does
(tests/kill_soak.py; its long mode, 100 kills, is `python tests/kill_soak.py`)."""

import pytest

from conftest import build_pico_model, build_pico_reward_model
from kill_soak import soak, soak_recipe


@pytest.mark.slow
@pytest.mark.ci
def test_a_run_killed_at_random_points_ends_as_an_uninterrupted_one(tmp_path, smol_tokenizer_dir):
    target = build_pico_model(smol_tokenizer_dir, tmp_path / "target", seed=0)
    opponent = build_pico_model(smol_tokenizer_dir, tmp_path / "opponent", seed=1)
    reward = build_pico_reward_model(smol_tokenizer_dir, tmp_path / "reward")
    recipe = soak_recipe(tmp_path / "soak.yaml", target, opponent, reward)
    result = soak(recipe, tmp_path / "reference", tmp_path / "soaked", kills=3, seed=1)
    assert result["kill_points"] == 3 and sum(result["phases"].values()) == 3
    assert (result["lost_rows"], result["duplicated_rows"], result["mismatches"]) == (0, 0, []), result
    compared = result["compared"]  # the comparison had something to compare: 5 checkpoints, 6 evaluations
    assert compared["weights"] >= 5 and compared["eval"] == 6 and compared["data"] == 4 and compared["judgments"]
