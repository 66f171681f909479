"""Generation paths side by side on the embedded model, in one run, on the same prompts:

1. one prompt at a time (what FastChat's `llm_judge/gen_model_answer.py` does);
2. plain batched `model.generate` (length-sorted, left-padded batches: the previous offline-arena path), where
   a batch runs until its longest row stops;
3. offline-arena's decoder (models/decode.py): the same batches, finished rows dropped as they stop.

The workload is the quickstart's battles: prompts of the built-in verifiable pack, sampled at temperature
0.7 (or greedy with --greedy), 64 new tokens. Useful tokens are those up to and including the stop token.
Also printed: the machine's matmul ceiling for float32 (2048² matmul on the threads torch uses) turned
into tokens/s for this model (2 FLOPs per parameter per token), and each path's share of it.

    python bench/generation.py [--prompts 64] [--max-new-tokens 64] [--batch-size 64] [--greedy]
"""

from __future__ import annotations

import argparse
import time

import torch


def useful(tokens: list[int], stop_ids) -> int:
    return next((i + 1 for i, t in enumerate(tokens) if t in stop_ids), len(tokens))


def plain_generate(model, tokenizer, batches, max_new_tokens, stop_ids, temperature) -> int:
    total = 0
    for texts in batches:
        ids = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=None) if temperature else \
            dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                                 pad_token_id=tokenizer.pad_token_id, **sampling)
        total += sum(useful(row, stop_ids) for row in out[:, ids["input_ids"].shape[1]:].tolist())
    return total


def matmul_ceiling_gflops(dtype=torch.float32, size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * size ** 3 / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--greedy", action="store_true")
    parser.add_argument("--skip-one-at-a-time", action="store_true", help="the slowest path; skip it for a quick run")
    args = parser.parse_args()

    from offline_arena.models import GenerationRequest, SamplingParams, load_generator
    from offline_arena.models.hf import length_capped_batches
    from offline_arena.prompts import load_prompts

    prompts = load_prompts(f"builtin:verifiable:round1/sft:{args.prompts}")
    ours = load_generator("builtin:smollm2-135m-instruct", batch_size=args.batch_size)
    ours.progress = False
    temperature = 0.0 if args.greedy else 0.7
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=temperature)
    requests = [GenerationRequest.of(p.messages, params=params) for p in prompts]
    rendered = [ours.render(p.messages) for p in prompts]
    lengths = [len(ours.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in rendered]
    order = sorted(range(len(rendered)), key=lambda i: lengths[i])
    batches = [[rendered[i] for i in b] for b in length_capped_batches(order, lengths, args.max_new_tokens, args.batch_size)]
    stop_ids = ours.stop_ids
    ours.generate(requests[:2])  # warm-up: first-call allocations are not what we measure

    results = {}
    if not args.skip_one_at_a_time:
        started = time.perf_counter()
        tokens = plain_generate(ours.model, ours.tokenizer, [[t] for t in rendered], args.max_new_tokens, stop_ids, temperature)
        results["one at a time (FastChat-style)"] = (tokens, time.perf_counter() - started)
    started = time.perf_counter()
    tokens = plain_generate(ours.model, ours.tokenizer, batches, args.max_new_tokens, stop_ids, temperature)
    results["plain batched generate (previous path)"] = (tokens, time.perf_counter() - started)
    started = time.perf_counter()
    completions = ours.generate(requests)
    results["offline-arena decoder (drops finished rows)"] = (sum(c.num_tokens for c in completions),
                                                              time.perf_counter() - started)
    runaways = sum(not c.stopped for c in completions)

    gflops = matmul_ceiling_gflops()
    parameters = sum(p.numel() for p in ours.model.parameters())
    ceiling = gflops * 1e9 / (2 * parameters)
    print(f"cpu={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()} prompts={len(prompts)} "
          f"max_new_tokens={args.max_new_tokens} batch_size={args.batch_size} temperature={temperature} "
          f"runaways={runaways}/{len(completions)} (our path)")
    print(f"float32 matmul: {gflops:.0f} GFLOPS -> ceiling {ceiling:.0f} tok/s for {parameters / 1e6:.0f}M parameters "
          "(prompt tokens count against it too)")
    plain_rate = results["plain batched generate (previous path)"][0] / results["plain batched generate (previous path)"][1]
    for name, (tokens, seconds) in results.items():
        rate = tokens / seconds
        print(f"{name:<46} {tokens:6d} useful tokens in {seconds:6.1f}s = {rate:6.1f} tok/s "
              f"({rate / plain_rate:.2f}x plain generate, {100 * rate / ceiling:.1f}% of the ceiling)")


if __name__ == "__main__":
    main()
