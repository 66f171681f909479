"""The pipeline on pico models: dry-runs of the bundled recipes, clear recipe errors, a full run, and a
run killed with SIGKILL mid-stage that resumes to the same final state as an uninterrupted one."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from offline_arena.cli import main
from offline_arena.config import RecipeError, load_recipe


def test_dry_run_of_bundled_recipes(capsys):
    assert main(["run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "recipe quickstart: round 1: sft -> dpo (2 training stages)" in out  # its RM + PPO is skipped
    # The reference recipe plans Arena Learning's scale and needs the user's prompt file: the plan and its
    # budget are printed, then what is missing.
    assert main(["run", "arena-learning-7b", "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "3 round(s)" in captured.out and "round3/rm_ppo                  30000" in captured.out
    assert "estimated cost" in captured.out and "arena-learning-prompts.jsonl: prompt file not found" in captured.err
    assert main(["run", "gpu-trial", "--dry-run"]) == 0
    assert "prompts: heldout 300, round1/sft 400" in capsys.readouterr().out
    assert main(["run", "quickstart", "--dry-run", "--rounds", "3"]) == 0
    assert "round3/sft" in capsys.readouterr().out


def test_dry_run_lists_evaluation_suites(tmp_path, capsys):
    path = write_recipe(tmp_path / "r.yaml", stages=[{"kind": "sft"}, {"kind": "dpo"}],
                        evaluation={"suites": {"ifbench": {"limit": 50}}})
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "plus evaluation suites on each of 3 checkpoints (not in the totals): ifbench {'limit': 50}" in capsys.readouterr().out


def write_recipe(path: Path, **changes) -> Path:
    recipe = {"name": "t", "target": "builtin:smollm2-135m-instruct",
              "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct@best-of-2"}],
              "stages": [{"kind": "sft"}]}
    recipe.update(changes)
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("changes,message", [
    ({"stages": [{"kind": "sft", "lerning_rate": 1}]}, r"stages.0.lerning_rate: unknown field"),
    ({"stages": [{"kind": "sft", "train": {"lerning_rate": 1}}]}, r"stages.0.train.lerning_rate: unknown field"),
    ({"stages": [{"kind": "dpo"}, {"kind": "sft"}]}, r"bad stage order \['dpo', 'sft'\]"),
    ({"stages": [{"kind": "ppo"}]}, r"stages.0.kind: Input should be 'sft', 'dpo', 'kto', 'rm_ppo', 'grpo', 'distill' or 'merge'"),
    ({"opponents": [{"name": "o"}]}, r"opponents.0.model: Field required"),
    ({"opponents": [{"name": "o", "model": "s3:bucket"}]}, r"opponents.0.model: .*unknown scheme"),
    ({"target": "openai:http://x/v1#m"}, r"target: the target must be a trainable model"),
    ({"rounds": 0}, r"rounds: Input should be greater than or equal to 1"),
    ({"evaluation": {"suites": {"hellaswag": {}}}}, r"evaluation.suites: .*unknown evaluation suite\(s\) \['hellaswag'\]"),
    ({"stages": [{"kind": "sft", "from_round": {1: {"min_rows": 2}}}]}, r"stages.0: .*from round 2 or later"),
    ({"stages": [{"kind": "sft", "from_round": {2: {"kind": "dpo"}}}]}, r"stages.0: .*\['kind'\] cannot change between rounds"),
    ({"stages": [{"kind": "sft", "from_round": {2: {"train": {"lerning_rate": 1}}}}]}, r"stages.0: .*from_round: 2: train.lerning_rate: Extra inputs are not permitted"),
])
def test_broken_recipes_name_the_file_and_field(tmp_path, changes, message):
    path = write_recipe(tmp_path / "r.yaml", **changes)
    with pytest.raises(RecipeError, match=message) as error:
        load_recipe(path)
    assert str(error.value).startswith(str(path))


def test_missing_and_non_mapping_recipes(tmp_path):
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="a recipe is a mapping"):
        load_recipe(tmp_path / "list.yaml")


@pytest.fixture(scope="module")
def pico_opponent_dir(smol_tokenizer_dir, tmp_path_factory):
    from conftest import build_pico_model

    return build_pico_model(smol_tokenizer_dir, tmp_path_factory.mktemp("pico_opponent"), seed=7)


def pico_recipe(tmp_path: Path, pico_model_dir, pico_reward_dir, opponent_dir) -> Path:
    """A whole round on pico models. The judge is a (random) pico reward model: a real judge that
    decides whenever the answers differ, so every stage gets data. Eight battles a stage: with four, the
    target won all of SFT's by chance once the sampling changed (a 1-in-16 draw), leaving SFT no rows."""
    keep = {"require_stopped": False, "require_passing": False}  # a random pico model never stops nor passes
    tiny = {"max_steps": 1, "batch_size": 2, "max_length": 256, "learning_rate": 1e-4, "runaway_tolerance": 1.0}
    return write_recipe(
        tmp_path / "pico.yaml", target=str(pico_model_dir), judge=f"rm:{pico_reward_dir}",
        opponents=[{"name": "other@best-of-2", "model": f"{opponent_dir}@best-of-2"}],
        prompts={"per_stage": 8, "heldout": 4},
        generation={"max_new_tokens": 8, "batch_size": 8},
        stages=[{"kind": "sft", "train": tiny, "min_rows": 1, "data": keep},
                {"kind": "dpo", "train": tiny, "min_rows": 1, "data": keep},
                {"kind": "rm_ppo", "train": tiny, "min_rows": 1, "data": keep,
                 "ppo": {"steps": 1, "rollouts_per_step": 2, "max_new_tokens": 8}}],
        evaluation={"bootstrap_rounds": 10, "suites": {"verifiable": {"limit": 3, "max_new_tokens": 8}}})


def state_of(run_dir: Path) -> dict:
    conn = sqlite3.connect(run_dir / "store.sqlite")
    state = {table: sorted(r[0] for r in conn.execute(f"SELECT {column} FROM {table}"))
             for table, column in (("completions", "key"), ("battles", "id"), ("judgments", "key"))}
    conn.close()
    state["data"] = {str(p.relative_to(run_dir)): p.read_text() for p in sorted(run_dir.glob("round*/*/data.jsonl"))}
    return state


def test_killed_run_resumes_to_the_same_state(tmp_path, pico_model_dir, pico_reward_dir, pico_opponent_dir):
    recipe = pico_recipe(tmp_path, pico_model_dir, pico_reward_dir, pico_opponent_dir)
    command = [sys.executable, "-m", "offline_arena.cli", "run", str(recipe)]
    whole = tmp_path / "whole"
    finished = subprocess.run(command + ["--run-dir", str(whole)], capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads((whole / "summary.json").read_text())
    assert [s["model_name"] for s in summary["stages"]] == ["base", "r1-sft", "r1-dpo", "r1-rm_ppo"]
    for stage in summary["stages"][1:]:
        assert stage["train"]["rows"] >= 1 and not stage["train"].get("skipped"), stage
        assert stage["train"]["guard"]["end_of_turn_in_labels"] or stage["stage"] == "rm_ppo"
        assert Path(stage["checkpoint"]).is_dir() and Path(stage["checkpoint"]).name == "checkpoint"
    assert (whole / "manifest.json").is_file() and (whole / "leaderboard.json").is_file()
    # Every checkpoint is compared with the base on the same held-out prompts, and the run says so last.
    final = summary["final_vs_base"]["prompt_strict"]
    assert final["n"] == 4 and final["ci"][0] <= final["diff"] <= final["ci"][1]
    assert summary["stages"][-1]["vs_base"] == summary["final_vs_base"]
    assert "final vs base: " in finished.stdout
    suite = json.loads((whole / "round1" / "dpo" / "eval.json").read_text())["suites"]["verifiable"]
    assert suite["model"] == summary["stages"][2]["checkpoint"] and suite["prompts"] == 3

    killed = tmp_path / "killed"
    process = subprocess.Popen(command + ["--run-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "round1" / "dpo" / "data.jsonl").exists():
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)  # in the middle of the DPO stage: data built, training under way
    process.wait()
    assert not (killed / "round1" / "dpo" / "done.json").exists()
    resumed = subprocess.run(command + ["--run-dir", str(killed)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[round 1 sft] already done, skipped" in resumed.stdout
    assert state_of(killed) == state_of(whole)


def test_resuming_with_another_recipe_is_refused(tmp_path, pico_model_dir, pico_reward_dir, capsys):
    from offline_arena.pipeline.loop import save_recipe
    from offline_arena.run_folder import RunFolder

    recipe = load_recipe(pico_recipe(tmp_path, pico_model_dir, pico_reward_dir, pico_model_dir))
    save_recipe(recipe, RunFolder(tmp_path))
    with pytest.raises(ValueError, match=r"different recipe \(seed: 0 -> 1"):
        save_recipe(recipe.model_copy(update={"seed": 1}), RunFolder(tmp_path))
    # A run begun before a field joined the schema resumes: the field holds its default, nothing differs.
    saved = json.loads((tmp_path / "recipe.json").read_text())
    del saved["privacy"], saved["stages"][0]["ppo"]["engine"]
    (tmp_path / "recipe.json").write_text(json.dumps(saved))
    save_recipe(recipe, RunFolder(tmp_path))
    # More rounds continue the same run (round r's prompts do not depend on how many rounds there are).
    save_recipe(recipe.model_copy(update={"rounds": 3}), RunFolder(tmp_path))
    assert json.loads((tmp_path / "recipe.json").read_text())["rounds"] == 3
    with pytest.raises(ValueError, match=r"different recipe \(seed: 0 -> 1"):
        save_recipe(recipe.model_copy(update={"rounds": 2, "seed": 1}), RunFolder(tmp_path))


def test_doctor_names_what_differs(tmp_path, capsys):
    for name, version, lr in (("a", "5.23.0", 1e-5), ("b", "5.24.0", 2e-5)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "recipe.json").write_text(json.dumps({"stages": [{"train": {"learning_rate": lr}}]}))
        (folder / "manifest.json").write_text(json.dumps({"created_at": name, "packages": {"transformers": version}}))
    assert main(["doctor", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "stages.0.train.learning_rate: 1e-05  ->  2e-05" in out
    assert "packages.transformers: 5.23.0  ->  5.24.0" in out and "created_at" not in out
    assert main(["doctor", str(tmp_path / "a"), str(tmp_path / "nope")]) == 2


def test_mlflow_tracking_logs_every_stage(tmp_path, pico_model_dir, pico_reward_dir, pico_opponent_dir):
    """tracking.mlflow: one MLflow run per stage in RUN/mlflow.db (a local SQLite store), with the recipe as
    params and the stage's numbers as metrics — read back through MLflow's own client."""
    import mlflow

    recipe = load_recipe(pico_recipe(tmp_path, pico_model_dir, pico_reward_dir, pico_opponent_dir))
    recipe = recipe.model_copy(update={"stages": recipe.stages[:1], "tracking": recipe.tracking.model_copy(
        update={"mlflow": True}), "evaluation": recipe.evaluation.model_copy(update={"suites": {}})})
    from offline_arena.pipeline import run

    summary = run(recipe, tmp_path / "run", log=lambda *_: None)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == recipe.name]
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.data.tags["mlflow.runName"] == "round1/sft"
    assert logged.data.params["target"] == str(pico_model_dir)
    stage = summary["stages"][1]
    assert logged.data.metrics["train.rows"] == stage["train"]["rows"]
    assert logged.data.metrics["heldout.prompt_strict"] == pytest.approx(stage["heldout"]["prompt_strict"])


def test_an_opponent_that_follows_the_target_repairs_the_current_model(tmp_path, pico_model_dir, pico_opponent_dir):
    """Issue 21: `target@revise` is the model a stage starts from, repaired (round 3 learns from repairs of
    round 2's model, not the base's); the evaluation keeps the base's version as its fixed anchor, and other
    opponents are the run's own."""
    from types import SimpleNamespace

    from offline_arena.config import Recipe
    from offline_arena.pipeline.contestants import load_opponent, opponent_model
    from offline_arena.pipeline.stages import stage_opponents
    from offline_arena.store import Store

    assert opponent_model("target@revise", "runs/q/round1/sft/checkpoint") == "runs/q/round1/sft/checkpoint@revise"
    assert opponent_model("target", "x") == "x" and opponent_model("targets/m@revise", "x") == "targets/m@revise"
    recipe = Recipe.model_validate({"name": "t", "target": str(pico_model_dir), "stages": [{"kind": "sft"}],
                                    "opponents": [{"name": "fixer", "model": "target@revise"},
                                                  {"name": "other", "model": str(pico_opponent_dir)}]})
    with Store(tmp_path / "s.sqlite") as store:
        run_opponents = {o.name: load_opponent(o, recipe.target, store, recipe) for o in recipe.opponents}
        ctx = SimpleNamespace(recipe=recipe, store=store, opponents=run_opponents)
        assert stage_opponents(ctx, recipe.target) == run_opponents  # round 1: the target is the base
        later = stage_opponents(ctx, str(pico_opponent_dir))
        assert later["other"] is run_opponents["other"]
        assert later["fixer"].fingerprint != run_opponents["fixer"].fingerprint
        assert later["fixer"].fingerprint == load_opponent(recipe.opponents[0], str(pico_opponent_dir), store,
                                                           recipe).fingerprint
        assert "@revise" in later["fixer"].fingerprint


def test_a_stage_changes_its_settings_from_the_round_its_recipe_says():
    from offline_arena.config import Stage

    stage = Stage.model_validate({"kind": "dpo", "train": {"learning_rate": 2e-5, "extra": {"beta": 0.1}},
                                  "from_round": {2: {"train": {"extra": {"loss_type": ["sigmoid", "sft"]}}},
                                                 3: {"train": {"learning_rate": 1e-5}, "min_rows": 3}}})
    assert stage.for_round(1) is stage
    second, third = stage.for_round(2), stage.for_round(5)
    assert second.train.extra == {"beta": 0.1, "loss_type": ["sigmoid", "sft"]}  # merged key by key
    assert second.train.learning_rate == 2e-5 and second.min_rows == stage.min_rows
    assert third.train.extra == second.train.extra and third.train.learning_rate == 1e-5 and third.min_rows == 3
    assert not third.from_round


def test_a_stage_runs_only_in_the_rounds_it_does_not_skip(tmp_path):
    from offline_arena.plan import format_plan, plan
    from offline_arena.shards import file_slots

    path = write_recipe(tmp_path / "r.yaml", rounds=3, prompts={"source": "p.jsonl", "per_stage": 5, "heldout": 7},
                        stages=[{"kind": "sft", "from_round": {2: {"skip": True}}},
                                {"kind": "dpo"},
                                {"kind": "rm_ppo", "skip": True, "from_round": {3: {"skip": False}}}])
    recipe = load_recipe(path)
    assert [[s.kind for s in recipe.stages_in_round(r)] for r in (1, 2, 3)] == [["sft", "dpo"], ["dpo"], ["dpo", "rm_ppo"]]
    p = plan(recipe)
    assert p["training_stages"] == 5 and p["evaluated_checkpoints"] == 6  # and the base
    assert "round 1: sft -> dpo; round 2: dpo; round 3: dpo -> rm_ppo (5 training stages)" in format_plan(p)
    assert [row["stage"] for row in p["rows"] if not row["stage"].startswith("eval")] == [
        "round1/sft", "round1/dpo", "round2/dpo", "round3/dpo", "round3/rm_ppo"]
    # A prompt file is dealt only to the stages that run: no slot is kept for round 2's SFT.
    assert file_slots(recipe) == [("heldout", 7), ("round1/sft", 5), ("round1/dpo", 5), ("round2/dpo", 5),
                                  ("round3/dpo", 5), ("round3/rm", 5)]  # rm_ppo's prompt slot
    never = write_recipe(tmp_path / "never.yaml", stages=[{"kind": "sft", "skip": True}])
    assert load_recipe(never).stages_in_round(1) == []


def test_a_run_trains_later_rounds_with_their_changed_settings(tmp_path, pico_model_dir, pico_reward_dir):
    keep = {"require_stopped": False, "require_passing": False}
    tiny = {"max_steps": 1, "batch_size": 2, "max_length": 256, "learning_rate": 1e-4, "runaway_tolerance": 1.0}
    recipe = write_recipe(
        tmp_path / "r.yaml", target=str(pico_model_dir), judge=f"rm:{pico_reward_dir}", rounds=2,
        prompts={"per_stage": 8, "heldout": 4}, generation={"max_new_tokens": 8, "batch_size": 8},
        stages=[{"kind": "sft", "train": tiny, "min_rows": 1, "data": keep, "from_round": {2: {"min_rows": 1000}}},
                {"kind": "dpo", "train": tiny, "min_rows": 1, "data": keep, "skip": True,
                 "from_round": {2: {"skip": False}}}],
        evaluation={"bootstrap_rounds": 10, "leaderboard": False})
    run = subprocess.run([sys.executable, "-m", "offline_arena.cli", "run", str(recipe), "--run-dir",
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    stages = json.loads((tmp_path / "run" / "summary.json").read_text())["stages"]
    assert [s["model_name"] for s in stages] == ["base", "r1-sft", "r2-sft", "r2-dpo"]  # no r1-dpo: it skips round 1
    assert not (tmp_path / "run" / "round1" / "dpo").exists()
    first, second, dpo = stages[1:]
    assert not first["train"].get("skipped")  # round 1: its own min_rows (1)
    assert second["train"].get("skipped") and "(< min_rows 1000)" in run.stdout  # round 2: the changed one
    # Round 2's DPO starts from the model round 2's SFT passed on (r1-sft's checkpoint, SFT skipped training),
    # and its family guard compares it with that stage.
    assert not dpo["train"].get("skipped") and second["checkpoint"] == first["checkpoint"]
    assert "[round 2 dpo] family guard vs r2-sft" in run.stdout
