"""Length-capped generation batches vs plain fixed-size batches, side by side on the same loaded model.

One long prompt among short ones (as in IFBench, whose test set has a 2,561-token prompt) pads a plain batch
to its length; `length_capped_batches` gives it a batch of its own. Same requests, greedy, both ways:

    .venv/bin/python bench/batching.py [--short 15] [--long-tokens 2500] [--max-new-tokens 32]

Then rows: a fixed 32 or 64 rows a batch against rows by memory and length (up to MAX_ROWS), on the
quickstart's evaluation workload (96 held-out prompts, greedy, 64 new tokens) and its battle workload
(sampled at 0.7), the same loaded model throughout.
"""

from __future__ import annotations

import argparse
import time

from offline_arena.loading import load_generator
from offline_arena.models.base import GenerationRequest, SamplingParams
from offline_arena.prompts.verifiable import load_verifiable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=15, help="short prompts (the built-in pack's)")
    parser.add_argument("--long-tokens", type=int, default=2500, help="about this many tokens in the long prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rows-prompts", type=int, default=96, help="prompts of the rows comparison")
    args = parser.parse_args()

    generator = load_generator("builtin:smollm2-135m-instruct", batch_size=args.batch_size)
    paragraph = "The committee reviewed the clinic's intake notes and discharge summaries line by line. "
    long_text = paragraph * (args.long_tokens // len(generator.tokenizer(paragraph)["input_ids"]))
    messages = [p.messages for p in load_verifiable("round3/sft", args.short, 0)]
    messages.append(({"role": "user", "content": "Summarise this in one sentence:\n\n" + long_text},))
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    requests = [GenerationRequest.of(m, params=params) for m in messages]
    generator.generate(requests[:2])  # warm-up

    timings = {}
    for name, cap in (("plain batches", 10**12), ("length-capped", generator.max_batch_tokens)):
        generator.max_batch_tokens = cap
        started = time.perf_counter()
        answers = generator.generate(requests)
        timings[name] = time.perf_counter() - started
        print(f"{name:>14}: {timings[name]:6.1f} s for {len(answers)} answers "
              f"({sum(a.num_tokens for a in answers)} tokens)")
    print(f"length-capped is {timings['plain batches'] / timings['length-capped']:.2f}x faster")
    compare_rows(generator, args.rows_prompts)


def compare_rows(generator, prompts: int) -> None:
    from offline_arena.models.hf import MAX_ROWS, batch_token_budget

    messages = [p.messages for p in load_verifiable("heldout", prompts, 0)]
    budget = batch_token_budget(generator.model, generator.device)
    for label, params in (("greedy", SamplingParams(max_new_tokens=64, temperature=0.0)),
                          ("sampled", SamplingParams(max_new_tokens=64, temperature=0.7))):
        requests = [GenerationRequest.of(m, params=params, seed=3) for m in messages]
        seconds = {}
        for rows in (32, 64, None):
            generator.batch_size, generator.max_batch_tokens = rows or MAX_ROWS, budget
            started = time.perf_counter()
            answers = generator.generate(requests)
            seconds[rows] = time.perf_counter() - started
            tokens = sum(a.num_tokens for a in answers)
            print(f"{label:>8} {('by memory' if rows is None else f'{rows} rows'):>10}: {seconds[rows]:6.1f} s, "
                  f"{tokens / seconds[rows]:6.1f} useful tok/s")
        print(f"{label:>8}: rows by memory vs 32 rows {seconds[32] / seconds[None]:.2f}x, vs 64 rows "
              f"{seconds[64] / seconds[None]:.2f}x")


if __name__ == "__main__":
    main()
