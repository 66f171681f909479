"""Length-capped generation batches vs plain fixed-size batches, side by side on the same loaded model.

One long prompt among short ones (as in IFBench, whose test set has a 2,561-token prompt) pads a plain batch
to its length; `length_capped_batches` gives it a batch of its own. Same requests, greedy, both ways:

    .venv/bin/python bench/batching.py [--short 15] [--long-tokens 2500] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import time

from offline_arena.models import load_generator
from offline_arena.models.base import GenerationRequest, SamplingParams
from offline_arena.prompts.verifiable import load_verifiable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=15, help="short prompts (the built-in pack's)")
    parser.add_argument("--long-tokens", type=int, default=2500, help="about this many tokens in the long prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
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


if __name__ == "__main__":
    main()
