"""Random batches against length-grouped ones (and DPO's reference log-probabilities computed once, before
training), side by side in one run, on a quickstart run's own SFT and DPO rows with the quickstart's stage
settings: seconds per stage and the loss curves.

On a CPU padding is compute: the quickstart's answers run from one line to 320 tokens, and a random batch of
four is padded to its longest. `group_by_length` batches rows of similar length (random megabatches, sorted
inside); `precompute_ref_log_probs` runs the frozen reference once over the data instead of once per epoch.

    python bench/length_grouping.py RUN_DIR     # a folder of `arena run` (quickstart), round 1 done
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a quickstart run folder holding round1/{sft,dpo}/data.jsonl")
    args = parser.parse_args()

    from offline_arena.cli import resolve_recipe_path
    from offline_arena.config import load_recipe
    from offline_arena.models.builtin import materialise
    from offline_arena.models.dtype import compute_dtype
    from offline_arena.train.common import TrainSettings
    from offline_arena.train.dpo import train_dpo
    from offline_arena.train.sft import train_sft

    recipe = load_recipe(resolve_recipe_path("quickstart"))
    base = materialise("smollm2-135m-instruct")
    print(f"compute dtype {compute_dtype('cpu')}", flush=True)

    def rows(kind: str) -> list[dict]:
        return [json.loads(line) for line in (args.run / "round1" / kind / "data.jsonl").open()]

    def settings(kind: str, **changes) -> TrainSettings:
        stage = next(s for s in recipe.stages if s.kind == kind)
        trained = TrainSettings.from_recipe(stage.train, seed=recipe.seed)
        trained.probe_prompts = 0
        for name, value in changes.items():
            setattr(trained, name, value)
        return trained

    dpo_extra = settings("dpo").extra
    plain_extra = {k: v for k, v in dpo_extra.items() if k != "precompute_ref_log_probs"}
    variants = [
        ("sft", train_sft, "random batches", settings("sft", group_by_length=False)),
        ("sft", train_sft, "grouped by length", settings("sft", group_by_length=True)),
        ("dpo", train_dpo, "random batches", settings("dpo", group_by_length=False, extra=plain_extra)),
        ("dpo", train_dpo, "grouped by length", settings("dpo", group_by_length=True, extra=plain_extra)),
        ("dpo", train_dpo, "grouped + reference precomputed",
         settings("dpo", group_by_length=True, extra={**plain_extra, "precompute_ref_log_probs": True})),
    ]
    seconds: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, train, label, trained in variants:
            data = rows(kind)
            started = time.perf_counter()
            result = train(base, data, Path(tmp) / f"{kind}-{len(seconds)}", trained, [])
            seconds[kind, label] = time.perf_counter() - started
            curve = result.metrics["loss_curve"]
            ratio = seconds[kind, "random batches"] / seconds[kind, label]
            print(f"{kind} {len(data)} rows, {label}: {seconds[kind, label]:.0f} s ({ratio:.2f}x random), "
                  f"{len(curve)} steps, loss first/mean/last {curve[0]:.3f}/{sum(curve) / len(curve):.3f}/"
                  f"{curve[-1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
