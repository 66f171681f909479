"""The kill soak: a pico run through every phase (battles, judging, data, each trainer, checkpoint save, the
guard, evaluation, the merge, the report), SIGKILLed at random moments and resumed each time, then compared
with an uninterrupted run of the same recipe.

    python tests/kill_soak.py --kills 100        # the long mode (about half an hour on 2 cores)
    pytest -m slow tests/test_kill_soak.py       # a handful of kills (CI runs it)

Compared, after the soaked run finally finishes: every store row (completion keys and texts, battles,
judgments and their verdicts), every stage's data.jsonl, every evaluation's numbers, every checkpoint's
weights (sha256 of its safetensors), the stage summaries' outcomes. Printed: kill points tried, the phases
they hit, lost rows, duplicated rows, mismatches — all of which must be 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

TINY = {"max_steps": 1, "batch_size": 2, "max_length": 96, "learning_rate": 1e-4, "runaway_tolerance": 1.0,
        "probe_prompts": 2}
KEEP = {"require_stopped": False, "require_passing": False}  # a random pico model never stops nor passes


def soak_recipe(path: Path, target: Path, opponent: Path, reward: Path) -> Path:
    stage = {"train": TINY, "min_rows": 1, "data": KEEP}
    path.write_text(yaml.safe_dump({
        "name": "soak", "target": str(target), "judge": f"rm:{reward}",
        "opponents": [{"name": "other", "model": str(opponent)}],
        "prompts": {"per_stage": 4, "heldout": 4}, "generation": {"max_new_tokens": 8, "batch_size": 8},
        "stages": [{"kind": "sft", **stage}, {"kind": "dpo", **stage}, {"kind": "kto", **stage},
                   {"kind": "rm_ppo", **stage, "ppo": {"steps": 1, "rollouts_per_step": 2, "max_new_tokens": 8}},
                   {"kind": "merge", "merge": {"method": "linear", "models": "this_round"}}],
        "evaluation": {"bootstrap_rounds": 10}}))
    return path


def command(recipe: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "offline_arena.cli", "run", str(recipe), "--run-dir", str(run_dir)]


def phase_of(run_dir: Path, stages: list[str]) -> str:
    """Where a killed run was, read from what it had finished: the first unfinished step."""
    if not (run_dir / "round0" / "base" / "eval.json").is_file():
        return "start / base evaluation"
    for kind in stages:
        folder = run_dir / "round1" / kind
        if (folder / "done.json").is_file():
            continue
        if not folder.is_dir():
            return f"{kind}: start"
        if kind == "merge":
            return "merge: merging / evaluation"
        if not (folder / "data.jsonl").is_file():
            return f"{kind}: battles / judging / data"
        trained = [(folder / sub / "metrics.json").is_file() for sub in ("", "ppo")]
        if not any(trained):
            return f"{kind}: training / guard / checkpoint save"
        if not (folder / "eval.json").is_file():
            return f"{kind}: evaluation"
        return f"{kind}: marking done"
    if not (run_dir / "report.html").is_file():
        return "summary / report"
    return "finished"


def state_of(run_dir: Path) -> dict:
    """Everything that must come out the same, with the rows counted for losses and duplicates."""
    conn = sqlite3.connect(run_dir / "store.sqlite")
    state = {
        "completions": sorted(conn.execute("SELECT key, text, stopped, num_tokens FROM completions")),
        "battles": sorted(conn.execute("SELECT id, tag, model_a, model_b, answer_a, answer_b FROM battles")),
        "judgments": sorted(conn.execute("SELECT key, judge, winner, score_a, score_b FROM judgments")),
        "links": sorted(conn.execute("SELECT battle_id, judge, judgment_key FROM battle_judgments")),
    }
    conn.close()
    state["data"] = {str(p.relative_to(run_dir)): p.read_text() for p in sorted(run_dir.glob("round*/*/data.jsonl"))}
    state["eval"] = {str(p.relative_to(run_dir)): _numbers(json.loads(p.read_text()).get("heldout", {}))
                     for p in sorted(run_dir.glob("round*/*/eval.json"))}
    state["weights"] = {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(run_dir.glob("round*/*/**/checkpoint/*.safetensors"))}
    state["outcomes"] = {str(p.relative_to(run_dir)): json.loads(p.read_text()).get("outcomes")
                         for p in sorted(run_dir.glob("round*/*/done.json"))}
    return state


def _numbers(heldout: dict) -> dict:
    return {k: v for k, v in heldout.items() if isinstance(v, (int, float, list)) and k != "per_prompt"}


def compare(reference: dict, soaked: dict) -> dict:
    """Lost and duplicated store rows, and mismatches of everything else."""
    lost = duplicated = 0
    for table in ("completions", "battles", "judgments", "links"):
        want, got = Counter(reference[table]), Counter(soaked[table])
        lost += sum((want - got).values())
        duplicated += sum((got - want).values())
    mismatches = [f"{part}: {name}" for part in ("data", "eval", "weights", "outcomes")
                  for name in sorted(set(reference[part]) | set(soaked[part]))
                  if reference[part].get(name) != soaked[part].get(name)]
    return {"lost_rows": lost, "duplicated_rows": duplicated, "mismatches": mismatches}


def soak(recipe: Path, reference_dir: Path, soak_dir: Path, kills: int, seed: int = 0, log=print) -> dict:
    stages = [s["kind"] for s in yaml.safe_load(recipe.read_text())["stages"]]
    started = time.monotonic()
    done = subprocess.run(command(recipe, reference_dir), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed:\n{done.stderr[-3000:]}")
    whole = time.monotonic() - started
    log(f"uninterrupted run: {whole:.0f}s")
    rng = random.Random(seed)
    phases: Counter = Counter()
    tried, window, last_phase = 0, max(whole / 2, 5.0), None
    while tried < kills:
        process = subprocess.Popen(command(recipe, soak_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Anywhere in a window that can reach past the longest step, so every phase gets hit; a kill that
        # found the run where the previous one did widens the window, so the run always moves on.
        time.sleep(rng.uniform(0.5, window))
        if process.poll() is not None:  # it finished before the kill: start over from a fresh folder
            if process.returncode != 0:
                raise RuntimeError(f"a resumed run failed with exit code {process.returncode}")
            log(f"  run finished before kill {tried + 1}; comparing, then starting a fresh folder")
            _check(reference_dir, soak_dir)
            _remove(soak_dir)
            continue
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        tried += 1
        phase = phase_of(soak_dir, stages)
        phases[phase] += 1
        window = window * 1.5 if phase == last_phase else max(whole / 2, 5.0)
        last_phase = phase
        log(f"  kill {tried}/{kills}: {phase}")
    finished = subprocess.run(command(recipe, soak_dir), capture_output=True, text=True, timeout=1800)
    if finished.returncode != 0:
        raise RuntimeError(f"the last resume failed:\n{finished.stderr[-3000:]}")
    reference = state_of(reference_dir)
    return {"kill_points": tried, "phases": dict(phases), **compare(reference, state_of(soak_dir)),
            "compared": {part: len(rows) for part, rows in reference.items()}}


def _check(reference_dir: Path, soak_dir: Path) -> None:
    outcome = compare(state_of(reference_dir), state_of(soak_dir))
    if outcome["lost_rows"] or outcome["duplicated_rows"] or outcome["mismatches"]:
        raise RuntimeError(f"a soaked run differs from the uninterrupted one: {outcome}")


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)
    import tempfile

    from conftest import build_pico_model, build_pico_reward_model
    from offline_arena.models.builtin import materialise

    work = Path(args.work or tempfile.mkdtemp(prefix="kill-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = materialise("smollm2-135m-instruct", tokenizer_only=True)
    target = build_pico_model(tokenizer, work / "target", seed=0)
    opponent = build_pico_model(tokenizer, work / "opponent", seed=1)
    reward = build_pico_reward_model(tokenizer, work / "reward")
    recipe = soak_recipe(work / "soak.yaml", target, opponent, reward)
    result = soak(recipe, work / "reference", work / "soaked", args.kills, args.seed)
    print(json.dumps(result, indent=2))
    clean = not (result["lost_rows"] or result["duplicated_rows"] or result["mismatches"])
    print(f"kill points {result['kill_points']}, phases hit {len(result['phases'])}, lost rows {result['lost_rows']}, "
          f"duplicated rows {result['duplicated_rows']}, mismatches {len(result['mismatches'])}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
