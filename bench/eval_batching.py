"""The quickstart's evaluation workload, generated three ways on the same loaded model, in one run:

1. as cut before (batches of at most 64 rows and 16K padded tokens; held-out and IFEval in two calls);
2. under today's token cap (`models/hf.py` MAX_BATCH_TOKENS), still two calls of up to 64 rows;
3. today's pipeline: one call of 160 rows for both (`pipeline/evaluation.py` `_generate_together`).

The workload is what `make run` evaluates every checkpoint on: the recipe's 96 held-out prompts, greedy,
each with its length budget (128-320 new tokens), and the first 64 IFEval prompts, greedy, 256 new tokens.
On a CPU a decode step costs a fixed part (weights read, per-op dispatch) plus a part per row, so rows
decoded together are cheaper, and the few long-budget rows of one set no longer decode alone at the end.

    .venv/bin/python bench/eval_batching.py [--recipe quickstart]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="quickstart", help="a bundled recipe's name or a recipe file")
    args = parser.parse_args()

    from offline_arena.config import load_recipe
    from offline_arena.evals.heldout import heldout_requests
    from offline_arena.evals.suites import suite_requests
    from offline_arena.loading import load_generator
    from offline_arena.models.base import SamplingParams
    from offline_arena.models.hf import MAX_BATCH_TOKENS
    from offline_arena.cli import resolve_recipe_path
    from offline_arena.shards import heldout_prompts

    recipe = load_recipe(resolve_recipe_path(args.recipe))
    ev = recipe.evaluation
    params = SamplingParams(max_new_tokens=ev.max_new_tokens or recipe.generation.max_new_tokens, temperature=0.0)
    heldout = heldout_requests(heldout_prompts(recipe), params, recipe.seed)
    suites = [r for name, options in ev.suites.items() for r in suite_requests(name, options, recipe.seed)]
    generator = load_generator(recipe.target)  # no store: every call generates
    generator.progress = False
    generator.generate(heldout[:2])  # warm-up

    def timed(calls, rows: int, cap: int) -> float:
        generator.batch_size, generator.max_batch_tokens = rows, cap
        started = time.perf_counter()
        for requests in calls:
            generator.generate(requests)
        return time.perf_counter() - started

    print(f"{len(heldout)} held-out prompts (budgets {min(r.params.max_new_tokens for r in heldout)}-"
          f"{max(r.params.max_new_tokens for r in heldout)} new tokens) + {len(suites)} suite prompts, greedy, "
          f"dtype {generator.fingerprint.rsplit(':', 1)[-1]}")
    before = timed([heldout, suites], 64, 16384)
    print(f"before: two calls, 64 rows, 16K tokens a batch      {before:6.1f}s")
    two = timed([heldout, suites], 64, MAX_BATCH_TOKENS)
    print(f"two calls, 64 rows, {MAX_BATCH_TOKENS // 1024}K tokens a batch          {two:6.1f}s  "
          f"({before / two:.2f}x)")
    rows = len(heldout) + len(suites)
    one = timed([heldout + suites], rows, MAX_BATCH_TOKENS)
    print(f"one call, {rows} rows, {MAX_BATCH_TOKENS // 1024}K tokens a batch (today)   {one:6.1f}s  "
          f"({before / one:.2f}x)")


if __name__ == "__main__":
    main()
