"""A panel of three real judges audited against the verifier: reward models trained from a quickstart run's
own battles, then `arena judge audit panel:rm:A,rm:B,rm:C` on held-out pairs the run never trained on.

Why reward models: the embedded SmolLM2-135M cannot be a pairwise judge (it never writes a verdict in the
format, README "Judge audit"), and nothing larger is on this machine. Each member starts from another of the
run's checkpoints and learns from other battles, so they can disagree:
  A: the base model, on the SFT stage's battles (base vs its repaired answers),
  B: the SFT checkpoint, on the DPO stage's battles (the SFT model vs its repaired answers),
  C: the DPO checkpoint, on both.
The audit prints each member's agreement with the verifier on decisive pairs, Cohen's kappa for each pair of
members, Fleiss' kappa, and the panel's own agreement, position consistency and length bias.

    python bench/judge_panel.py RUN_DIR [--pairs 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def pairs_of(run_dir: Path, tags: list[str]) -> list[dict]:
    """The reward model's rows (TRL preference pairs) from the run's judged battles with these tags."""
    from offline_arena.cli_pieces import run_judged_battles
    from offline_arena.flywheel import DataFilters, reward_rows

    rows = []
    for tag in tags:
        _, battles = run_judged_battles(str(run_dir), None, tag)
        rows += reward_rows(battles, DataFilters())
    return rows


def train_member(start: Path, rows: list[dict], out_dir: Path, seed: int) -> Path:
    from offline_arena.train.common import TrainSettings
    from offline_arena.train.reward import train_reward

    if (out_dir / "checkpoint" / "config.json").is_file():
        return out_dir / "checkpoint"
    settings = TrainSettings(learning_rate=5e-5, epochs=2, batch_size=4, max_length=640, group_by_length=True,
                             probe_prompts=0, seed=seed)
    started = time.perf_counter()
    result = train_reward(str(start), rows, out_dir, settings)
    print(f"  {out_dir.name}: {len(rows)} pairs from {start}, {time.perf_counter() - started:.0f} s, "
          f"loss {result.metrics.get('first_loss', float('nan')):.3f} -> {result.metrics.get('last_loss', float('nan')):.3f}",
          flush=True)
    return result.checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished quickstart run folder (runs/quickstart)")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("runs/judge-panel"))
    args = parser.parse_args()

    from offline_arena.logs import setup_logging
    from offline_arena.models import parse_model_spec, resolve_local_path

    setup_logging()  # before the ML libraries load: their weight-loading reports and bars quieted as in `arena`
    run, out = args.run_dir.resolve(), args.out.resolve()
    base = resolve_local_path(parse_model_spec("builtin:smollm2-135m-instruct"))
    sft, dpo = run / "round1" / "sft" / "checkpoint", run / "round1" / "dpo" / "checkpoint"
    members = {"A": (base, ["round1/sft"]), "B": (sft, ["round1/dpo"]), "C": (dpo, ["round1/sft", "round1/dpo"])}
    print("training the panel's reward models:", flush=True)
    checkpoints = [train_member(start, pairs_of(run, tags), out / f"rm-{name}", seed)
                   for seed, (name, (start, tags)) in enumerate(members.items())]
    panel = "panel:" + ",".join(f"rm:{c}" for c in checkpoints)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "offline_arena.cli", "judge", "audit", panel, "--pairs", str(args.pairs),
                    "--run-dir", str(out / "audit"), "--out", str(out / "audit.json")], check=True)
    print(f"audit of the panel: {time.perf_counter() - started:.0f} s; report {out / 'audit.json'}")


if __name__ == "__main__":
    main()
