"""Batched generation vs. a one-prompt-at-a-time loop, on the embedded model, in one run.

The baseline is what FastChat's `llm_judge/gen_model_answer.py` does: for each question, render the chat
template, `model.generate(...)` on that single prompt, decode. Ours is `TransformersGenerator` (length-
bucketed batches, left padding, stop on end-of-turn). Both decode greedily with the same token limit and
stop tokens, on the same loaded model, so the difference is batching alone. Useful tokens are those up to
and including the stop token.

    python bench/generation.py [--prompts 32] [--max-new-tokens 64] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import time

import torch


def one_at_a_time(model, tokenizer, prompts, max_new_tokens, stop_ids):
    tokens = 0
    for text in prompts:
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**ids, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                                 pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
        new = out[0, ids["input_ids"].shape[1]:].tolist()
        tokens += next((i + 1 for i, t in enumerate(new) if t in stop_ids), len(new))
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from offline_arena.models import GenerationRequest, SamplingParams, load_generator
    from offline_arena.prompts import load_prompts

    prompts = load_prompts("builtin:sample")[: args.prompts]
    if len(prompts) < args.prompts:
        raise SystemExit(f"only {len(prompts)} built-in sample prompts")
    ours = load_generator("builtin:smollm2-135m-instruct", batch_size=args.batch_size)
    ours.progress = False
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    requests = [GenerationRequest.of(p.messages, params=params) for p in prompts]
    rendered = [ours.render(p.messages) for p in prompts]

    ours.generate(requests[:2])  # warm-up: first-call allocations are not what we measure
    started = time.perf_counter()
    baseline_tokens = one_at_a_time(ours.model, ours.tokenizer, rendered, args.max_new_tokens, ours.stop_ids)
    baseline_s = time.perf_counter() - started
    started = time.perf_counter()
    batched_tokens = sum(c.num_tokens for c in ours.generate(requests))
    batched_s = time.perf_counter() - started

    base_rate, our_rate = baseline_tokens / baseline_s, batched_tokens / batched_s
    print(f"threads={torch.get_num_threads()} prompts={len(prompts)} max_new_tokens={args.max_new_tokens} "
          f"batch_size={args.batch_size}")
    print(f"one-at-a-time (FastChat-style): {baseline_tokens} tokens in {baseline_s:.1f}s = {base_rate:.1f} tok/s")
    print(f"batched (offline-arena):        {batched_tokens} tokens in {batched_s:.1f}s = {our_rate:.1f} tok/s")
    print(f"speed-up: {our_rate / base_rate:.2f}x")


if __name__ == "__main__":
    main()
