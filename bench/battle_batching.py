"""A stage's battle answers against `target@revise`, generated two ways on the same loaded model, in one run:

1. as the stages did before: the target's answers in one call, then the drafts `@revise` repairs in another;
2. as `battles.run_battles` does now: both sets of requests in one call (`battles.generate_shared_drafts`).

The workload is the quickstart's SFT stage: its 64 training prompts, sampled at the recipe's temperature, each with
its length budget, once with the run's seed (the target's answers) and once with the drafts' own seed. On a CPU a
decode step costs a fixed part (weights read, per-op dispatch) plus a part per row, so 128 rows decoded together
are cheaper than two batches of 64, and the few long-budget rows of one set no longer decode alone at the end.
Both ways sample each set from the same model at the same settings; the texts differ only because a batch's random
stream is seeded by what the batch holds (models/hf.py `_batch_seed`).

    .venv/bin/python bench/battle_batching.py [--recipe quickstart] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="quickstart", help="a bundled recipe's name or a recipe file")
    parser.add_argument("--repeats", type=int, default=2, help="timings of each way, alternated (the best is kept)")
    args = parser.parse_args()

    from offline_arena.cli import resolve_recipe_path
    from offline_arena.config import load_recipe
    from offline_arena.loading import load_generator
    from offline_arena.models.base import GenerationRequest, SamplingParams, independent_request
    from offline_arena.prompts.budget import with_budget
    from offline_arena.shards import stage_prompts

    recipe = load_recipe(resolve_recipe_path(args.recipe))
    g = recipe.generation
    params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p)
    prompts = stage_prompts(recipe, 1, recipe.stages[0].kind)
    answers = [GenerationRequest.of(p.messages, params=with_budget(params, p.meta), seed=recipe.seed,
                                    context=dict(p.meta)) for p in prompts]
    drafts = [independent_request(r, "revise") for r in answers]
    generator = load_generator(recipe.target, batch_size=g.batch_size)  # no store: every call generates
    generator.progress = False
    generator.generate(answers[:2])  # warm-up

    def timed(calls) -> float:
        started = time.perf_counter()
        for requests in calls:
            generator.generate(requests)
        return time.perf_counter() - started

    print(f"{len(prompts)} prompts of the {recipe.name} recipe's first stage (budgets "
          f"{min(r.params.max_new_tokens for r in answers)}-{max(r.params.max_new_tokens for r in answers)} new "
          f"tokens), temperature {g.temperature}, batch size {g.batch_size}, "
          f"dtype {generator.fingerprint.rsplit(':', 1)[-1]}")
    two, one = [], []
    for _ in range(args.repeats):
        two.append(timed([answers, drafts]))
        one.append(timed([answers + drafts]))
    print(f"two calls of {len(answers)} rows (answers, then drafts)   best {min(two):6.1f}s   all {_seconds(two)}")
    print(f"one call of {2 * len(answers)} rows (today)               best {min(one):6.1f}s   all {_seconds(one)}")
    print(f"ratio two/one: {min(two) / min(one):.2f}x")


def _seconds(values) -> str:
    return " ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
