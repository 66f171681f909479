"""Does bf16 autocast change what SFT teaches? The same SFT rows trained twice with the quickstart's SFT
settings, float32 and bf16 autocast (float32 master weights either way), each checkpoint evaluated the same
way (the quickstart's 96 held-out prompts, greedy, 64 new tokens, in the machine's compute dtype), with the
paired difference to the base. Rows come from runs' `round1/sft/data.jsonl`, so two runs whose results
differ can be told apart: different data, or different training.

    python bench/training_dtype_effect.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding round1/sft/data.jsonl")
    args = parser.parse_args()

    from offline_arena.cli import resolve_recipe_path
    from offline_arena.config import load_recipe
    from offline_arena.evals.heldout import evaluate_generator, paired_vs
    from offline_arena.models import SamplingParams
    from offline_arena.models.builtin import materialise
    from offline_arena.models.dtype import compute_dtype
    from offline_arena.models.hf import TransformersGenerator
    from offline_arena.shards import heldout_prompts
    from offline_arena.train.common import TrainSettings
    from offline_arena.train.sft import train_sft

    recipe = load_recipe(resolve_recipe_path("quickstart"))
    heldout = heldout_prompts(recipe)
    params = SamplingParams(max_new_tokens=64, temperature=0.0)
    settings = TrainSettings.from_recipe(next(s for s in recipe.stages if s.kind == "sft").train)
    settings.probe_prompts = 0
    base = materialise("smollm2-135m-instruct")
    evaluation_dtype = compute_dtype("cpu")

    def evaluate(path):
        os.environ["OFFLINE_ARENA_DTYPE"] = evaluation_dtype
        return evaluate_generator(TransformersGenerator(path, progress=False), heldout, params, recipe.seed, 1000)[0]

    base_eval = evaluate(base)
    print(f"evaluated in {evaluation_dtype}; base prompt-level strict {base_eval['prompt_strict']:.3f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            rows = [json.loads(line) for line in (run / "round1" / "sft" / "data.jsonl").open()]
            for dtype in ("float32", "bfloat16"):
                os.environ["OFFLINE_ARENA_DTYPE"] = dtype  # trl_args turns bf16 autocast on for "bfloat16"
                started = time.perf_counter()
                result = train_sft(base, rows, Path(tmp) / f"{run.name}-{dtype}", settings, [])
                seconds = time.perf_counter() - started
                scored = evaluate(result.checkpoint)
                diff = paired_vs(scored, base_eval, "prompt_strict", 1000, 0)
                print(f"{run}: {len(rows)} rows, trained in {dtype} ({seconds:.0f} s): loss "
                      f"{[round(x, 3) for x in result.metrics['loss_curve']]}, held-out {scored['prompt_strict']:.3f}, "
                      f"vs base {diff['diff']:+.3f} [{diff['ci'][0]:+.3f}, {diff['ci'][1]:+.3f}]", flush=True)


if __name__ == "__main__":
    main()
