"""Bad input fails before any model loads: `arena run` and `arena run --dry-run` check every prompt split,
that scorers fit their prompts, and that endpoints and their keys may be used; one run per folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from offline_arena.run_folder import RunFolder, RunFolderBusy

OPPONENT = {"name": "o", "model": "builtin:smollm2-135m-instruct"}


def recipe_file(tmp_path: Path, **changes) -> Path:
    recipe = {"name": "t", "target": "builtin:smollm2-135m-instruct", "opponents": [OPPONENT],
              "stages": [{"kind": "sft"}], "prompts": {"per_stage": 4, "heldout": 4}}
    recipe.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def arena_run(args: list[str], env: dict | None = None) -> tuple[int, str, bool]:
    """`arena run ...` in a fresh interpreter: (exit code, stderr, whether a model library was imported).
    No torch/transformers import at all is the proof that nothing was loaded."""
    probe = textwrap.dedent(f"""
        import sys
        from offline_arena.cli import main
        code = main({args!r})
        print("LOADED" if {{"torch", "transformers"}} & set(sys.modules) else "NOTHING LOADED")
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    return done.returncode, done.stderr, "NOTHING LOADED" not in done.stdout


def prompt_file(tmp_path: Path, lines: list[str], name: str = "prompts.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def good_rows(n: int, constraints: bool = True) -> list[str]:
    extra = {"constraints": [{"id": "punctuation:no_comma", "params": {}}]} if constraints else {}
    return [json.dumps({"id": f"p{i}", "prompt": f"Say something about {i}.", **extra}) for i in range(n)]


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_broken_prompt_file_lists_every_bad_line_before_anything_loads(tmp_path, dry_run):
    source = prompt_file(tmp_path, [good_rows(1)[0], "{oops", json.dumps({"text": "no prompt"}), "[1, 2"])
    recipe = recipe_file(tmp_path, prompts={"source": source, "per_stage": 2, "heldout": 2})
    code, err, loaded = arena_run(["run", str(recipe), "--run-dir", str(tmp_path / "run")]
                                  + (["--dry-run"] if dry_run else []))
    assert code == 2 and not loaded
    assert f"{source}:2: not valid JSON" in err and f"{source}:3: row has neither" in err and f"{source}:4:" in err
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder behind


@pytest.mark.parametrize("lines,changes,message", [
    ([], {}, r"no prompts in file"),
    (good_rows(5), {}, r"prompts \(round1/sft\): .*5 prompts cannot fill split 'round1/sft' \(4 prompts after 4"),
    (good_rows(12, constraints=False), {},
     r"prompts \(heldout\): 4 of 4 prompts carry no checkable constraints .*the judge 'verifier'.*evaluation.heldout"),
    (good_rows(12, constraints=False), {"judge": "rm:/nowhere", "evaluation": {"heldout": False}},
     r"judge: no model folder /nowhere"),
    (good_rows(8, constraints=False),  # held-out and the rm_ppo stage: 4 + 4
     {"judge": "rm:/nowhere", "evaluation": {"heldout": False},
      "stages": [{"kind": "rm_ppo", "ppo": {"reward": "verifier"}}]},
     r"prompts \(round1/rm_ppo\): 4 of 4 .*ppo.reward 'verifier'"),
    (good_rows(8, constraints=False),  # review of issue 24: a @revise opponent failed only after loading
     {"judge": "rm:/nowhere", "evaluation": {"heldout": False},
      "opponents": [{"name": "fixer", "model": "builtin:smollm2-135m-instruct@revise"}]},
     r"prompts \(round1/sft\): 4 of 4 .*opponent 'fixer' \(@revise repairs answers against them\)"),
])
def test_bad_inputs_fail_before_anything_loads(tmp_path, lines, changes, message):
    source = prompt_file(tmp_path, lines)
    recipe = recipe_file(tmp_path, **{"prompts": {"source": source, "per_stage": 4, "heldout": 4}, **changes})
    code, err, loaded = arena_run(["run", str(recipe), "--run-dir", str(tmp_path / "run")])
    assert code == 2 and not loaded, err
    assert re.search(message, err), err


def test_endpoint_keys_are_checked_before_anything_loads(tmp_path):
    remote = {"name": "api", "model": "openai:http://api.example.com/v1#big", "api_key_env": "PLANTED_KEY"}
    recipe = recipe_file(tmp_path, opponents=[OPPONENT, remote])
    code, err, loaded = arena_run(["run", str(recipe), "--dry-run"], env={"PLANTED_KEY": "sk-planted-123"})
    assert code == 2 and not loaded
    assert "refusing to send the API key ($PLANTED_KEY) over plain http://" in err and "sk-planted-123" not in err

    remote["model"] = "openai:https://api.example.com/v1#big"
    recipe = recipe_file(tmp_path, opponents=[OPPONENT, remote])
    env = {k: v for k, v in os.environ.items() if k != "PLANTED_KEY"}
    done = subprocess.run([sys.executable, "-m", "offline_arena.cli", "run", str(recipe), "--dry-run"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "$PLANTED_KEY is not set" in done.stderr

    code, err, loaded = arena_run(["run", str(recipe), "--dry-run"], env={"PLANTED_KEY": "sk-planted-123"})
    assert code == 0 and not loaded, err  # https with a key: fine


def test_the_dry_run_counts_the_splits(tmp_path, capsys):
    from offline_arena.cli import main

    source = prompt_file(tmp_path, good_rows(12))
    assert main(["run", str(recipe_file(tmp_path, prompts={"source": source, "per_stage": 4, "heldout": 4})),
                 "--dry-run"]) == 0
    assert "prompts: heldout 4, round1/sft 4" in capsys.readouterr().out


def test_one_run_per_folder_and_a_killed_holder_never_blocks(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from offline_arena.run_folder import RunFolder
        with RunFolder({str(tmp_path)!r}).lock():
            print("locked", flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=rf"in use by another arena run \(pid {holder.pid} since"):
            with RunFolder(tmp_path).lock():
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "run.lock").is_file()  # the killed run's file stays; its lock died with it
    started = time.monotonic()
    with RunFolder(tmp_path).lock():
        assert f"pid {os.getpid()}" in (tmp_path / "run.lock").read_text()
    assert time.monotonic() - started < 5


def test_a_misspelt_trainer_extra_is_refused_before_any_battle():
    """`train.extra` goes to the TRL config as is: a misspelt key used to fail only when the stage trained."""
    from offline_arena.config import Recipe
    from offline_arena.preflight import PreflightError, preflight

    base = {"name": "t", "opponents": [OPPONENT], "prompts": {"per_stage": 4, "heldout": 4}}
    good = Recipe.model_validate({**base, "stages": [{"kind": "dpo", "train": {"extra": {"beta": 0.2}}}]})
    assert preflight(good).splits  # a real DPOConfig field passes
    bad = Recipe.model_validate({**base, "stages": [
        {"kind": "dpo", "train": {"extra": {"betaa": 0.2}}},
        {"kind": "rm_ppo", "ppo": {"extra": {"ppo_epoch": 2}}}]})
    with pytest.raises(PreflightError) as error:
        preflight(bad)
    assert re.search(r"stage dpo: train.extra: 'betaa' is not a field of TRL \S+'s DPOConfig \(did you mean 'beta'\?\)",
                     str(error.value)), error.value
    assert "stage rm_ppo: ppo.extra: 'ppo_epoch' is not a field of PPOSettings (did you mean 'ppo_epochs'?)" \
        in str(error.value)


def test_a_trainer_extra_of_the_wrong_type_is_refused_before_any_battle():
    """Each extra's value must fit its field's type in the installed class: "high" is no DPO beta, a list is
    no PPO epoch count; a number written as a string still fits, as it would in a YAML recipe."""
    from offline_arena.config import Recipe
    from offline_arena.preflight import PreflightError, preflight

    base = {"name": "t", "opponents": [OPPONENT], "prompts": {"per_stage": 4, "heldout": 4}}
    good = Recipe.model_validate({**base, "stages": [
        {"kind": "dpo", "train": {"extra": {"beta": "0.2", "loss_type": ["sigmoid"]}}},
        {"kind": "rm_ppo", "ppo": {"extra": {"ppo_epochs": 2}}}]})
    assert preflight(good).splits
    bad = Recipe.model_validate({**base, "stages": [
        {"kind": "dpo", "train": {"extra": {"beta": "high"}}},
        {"kind": "rm_ppo", "ppo": {"extra": {"ppo_epochs": [2]}}}]})
    with pytest.raises(PreflightError) as error:
        preflight(bad)
    message = str(error.value)
    assert re.search(r"stage dpo: train.extra: beta: 'high' does not fit TRL \S+'s DPOConfig's field beta \(float\)",
                     message), message
    assert "stage rm_ppo: ppo.extra: ppo_epochs: [2] does not fit PPOSettings's field ppo_epochs (int)" in message

    # a later round's changed extras are checked too, naming the round (from_round)
    later = Recipe.model_validate({**base, "rounds": 2, "stages": [
        {"kind": "dpo", "train": {"extra": {"beta": 0.1}}, "from_round": {2: {"train": {"extra": {"los_type": ["sft"]}}}}}]})
    with pytest.raises(PreflightError, match=r"stage dpo from round 2: train.extra: 'los_type' is not a field of .*"
                                             r"did you mean 'loss_type'"):
        preflight(later)
