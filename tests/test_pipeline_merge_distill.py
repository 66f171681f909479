"""The merge and distill stage kinds in the pipeline, on pico models with a pico reward-model judge (as in
test_pipeline.py): a round that ends with a promoted SLERP merge, a distill stage followed by a merge that
only joins the leaderboard, the bundled example recipe's dry run, and the recipe errors of both kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from offline_arena.cli import main
from offline_arena.config import RecipeError, load_recipe
from test_pipeline import write_recipe

KEEP = {"require_stopped": False, "require_passing": False}  # a random pico model never stops nor passes
TINY = {"max_steps": 1, "batch_size": 2, "max_length": 256, "learning_rate": 1e-3, "runaway_tolerance": 1.0,
        "probe_prompts": 2}


@pytest.fixture(scope="module")
def pico_opponent_dir(smol_tokenizer_dir, tmp_path_factory):
    from conftest import build_pico_model

    return build_pico_model(smol_tokenizer_dir, tmp_path_factory.mktemp("pico_opponent"), seed=7)


def pico_run(tmp_path: Path, target, judge_dir, opponent_dir, stages: list[dict]) -> dict:
    from offline_arena.pipeline import run

    path = write_recipe(tmp_path / "pico.yaml", target=str(target), judge=f"rm:{judge_dir}",
                        opponents=[{"name": "other@best-of-2", "model": f"{opponent_dir}@best-of-2"}],
                        # eight battles a stage: with four, the random pico judge can hand the target every
                        # SFT battle (a 1-in-16 draw), leaving SFT no rows
                        prompts={"per_stage": 8, "heldout": 4}, generation={"max_new_tokens": 8, "batch_size": 8},
                        stages=stages, evaluation={"bootstrap_rounds": 10})
    return run(load_recipe(path), tmp_path / "run", log=lambda *a: None)


def weight(folder, name="model.layers.0.self_attn.q_proj.weight") -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "model.safetensors"), framework="pt") as handle:
        return handle.get_tensor(name)


def test_round_ending_with_a_slerp_merge_promotes_it(tmp_path, pico_model_dir, pico_reward_dir, pico_opponent_dir):
    stages = [{"kind": "sft", "train": TINY, "min_rows": 1, "data": KEEP},
              {"kind": "merge", "merge": {"method": "slerp", "models": "previous_round", "t": 0.5}}]
    final = pico_run(tmp_path, pico_model_dir, pico_reward_dir, pico_opponent_dir, stages)
    names = [s["model_name"] for s in final["stages"]]
    assert names == ["base", "r1-sft", "r1-merge"]
    sft, merge = final["stages"][1], final["stages"][2]
    assert final["final_model"] == merge["checkpoint"] and Path(merge["checkpoint"]).name == "checkpoint"
    assert merge["train"] == {**merge["train"], "method": "slerp", "models": ["r1-sft", "base"]}
    # Halfway between the SFT model and the round's start: neither end.
    merged = weight(merge["checkpoint"])
    assert not torch.equal(merged, weight(sft["checkpoint"])) and not torch.equal(merged, weight(pico_model_dir))
    assert "r1-merge" in {row["model"] for row in merge["leaderboard"]}
    assert json.loads((tmp_path / "run" / "round1" / "merge" / "done.json").read_text())["promoted"] is True


def test_distill_stage_then_a_merge_that_only_joins_the_leaderboard(tmp_path, pico_model_dir, pico_reward_dir,
                                                                    pico_opponent_dir):
    distill = {"kind": "distill", "teacher": str(pico_opponent_dir), "min_rows": 1,
               "train": {**TINY, "extra": {"max_completion_length": 6}}}
    stages = [{"kind": "sft", "train": TINY, "min_rows": 1, "data": KEEP}, distill,
              {"kind": "merge", "merge": {"method": "ties", "models": "this_round", "base": "target",
                                          "density": 0.5, "promote": False}}]
    final = pico_run(tmp_path, pico_model_dir, pico_reward_dir, pico_opponent_dir, stages)
    by_name = {s["model_name"]: s for s in final["stages"]}
    assert list(by_name) == ["base", "r1-sft", "r1-distill", "r1-merge"]
    distilled = by_name["r1-distill"]
    assert distilled["train"]["rows"] == 8 and distilled["train"]["guard"]["end_of_turn_in_labels"]
    assert distilled["teacher"] == str(pico_opponent_dir) and distilled["battles"] == 0
    assert not torch.equal(weight(distilled["checkpoint"]), weight(by_name["r1-sft"]["checkpoint"]))
    rows = (tmp_path / "run" / "round1" / "distill" / "data.jsonl").read_text().splitlines()
    assert len(rows) == 8 and "prompt" in json.loads(rows[0])
    # Not promoted: the distilled model stays the target, the merge is only a contestant.
    merge = by_name["r1-merge"]
    assert merge["promoted"] is False and merge["train"]["models"] == ["r1-sft", "r1-distill"]
    assert final["final_model"] == distilled["checkpoint"]
    assert "r1-merge" in {row["model"] for row in merge["leaderboard"]}


def test_bundled_merge_distill_recipe_dry_run(capsys):
    assert main(["run", "merge-distill", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "recipe merge-distill: 1 round(s) of sft -> distill -> merge (2 training stages)" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("round1/")}
    assert lines["round1/distill"][1:4] == ["24", "0", "24"]  # 24 prompts, no battles, one sample each
    assert lines["round1/merge"][1:] == ["(slerp)", "0", "0", "0", "0", "0"]


@pytest.mark.parametrize("stages,message", [
    ([{"kind": "distill"}], r"stages.0: .*a distill stage needs a teacher"),
    ([{"kind": "distill", "teacher": "openai:http://x/v1#m"}], r"teacher: logit distillation needs the teacher's weights"),
    ([{"kind": "sft", "teacher": "x"}], r"only a distill stage has a teacher"),
    ([{"kind": "merge", "merge": {"method": "soup"}}], r"stages.0.merge: .*unknown merge method 'soup'"),
    ([{"kind": "merge", "merge": {"method": "linear", "t": 0.3}}], r"linear does not use t"),
    ([{"kind": "sft"}, {"kind": "merge", "merge": {"models": "this_round"}}],
     r"this_round needs at least two earlier stages in the round, got 1"),
    ([{"kind": "sft"}, {"kind": "dpo"}, {"kind": "rm_ppo"}, {"kind": "merge", "merge": {"models": "this_round"}}],
     r"slerp merges exactly 2 models, but this_round gives 3"),
    ([{"kind": "sft"}, {"kind": "merge", "merge": {"method": "linear", "weights": [1, 2, 3]}}],
     r"weights: 3 given for the 2 models of previous_round"),
    ([{"kind": "dpo"}, {"kind": "distill", "teacher": "x"}], r"bad stage order \['dpo', 'distill'\]"),
])
def test_merge_and_distill_recipe_errors(tmp_path, stages, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write_recipe(tmp_path / "r.yaml", stages=stages))
