"""Generation paths side by side on the embedded model, in one run, on the same prompts:

1. one prompt at a time (what FastChat's `llm_judge/gen_model_answer.py` does; --one-at-a-time, slow);
2. plain batched `model.generate` in float32 (length-sorted, left-padded batches) -- the reference of issue
   12's target -- and in bfloat16 where this machine has bf16 units;
3. the previous offline-arena decoder (as of a929e53: one prefill, `DynamicCache`, finished rows dropped),
   in float32, which is what it computed in on every CPU it ran on;
4. today's decoder (models/decode.py: chunked prefill, preallocated cache, finished rows dropped) in float32
   and in the dtype `compute_dtype` picks on this machine.

The workload is the quickstart's battles: prompts of the built-in verifiable pack, sampled at temperature
0.7 (or greedy with --greedy), 64 new tokens, batches of 64. Useful tokens are those up to and including the
stop token. Also printed: the machine's matmul ceiling (2048² matmul on the threads torch uses) for each
dtype turned into tokens/s for this model (2 FLOPs per parameter per token), and each path's share of it.

    python bench/generation.py [--prompts 64] [--max-new-tokens 64] [--batch-size 64] [--greedy] [--one-at-a-time]
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


def previous_decode(model, input_ids, attention_mask, max_new_tokens, stop_ids, temperature, seed=0,
                    prune_fraction=0.125):
    """offline-arena's decoder as of a929e53 (its sampling too: `torch.multinomial`), kept here only to be
    measured against."""
    from transformers import DynamicCache

    def _pick(logits, temperature, top_p, top_k, generator):  # plain sampling only: what this bench asks
        if temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    generator = torch.Generator().manual_seed(seed)
    stops = torch.tensor(sorted(set(stop_ids)))
    rows = torch.arange(input_ids.shape[0])
    tokens: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool)
    cache, mask = DynamicCache(config=model.config), attention_mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1]
        for step in range(max_new_tokens):
            picked = _pick(logits, temperature, 1.0, 0, generator)
            for row, token, done in zip(rows.tolist(), picked.tolist(), finished.tolist()):
                if not done:
                    tokens[row].append(token)
            finished |= torch.isin(picked, stops)
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            if finished.sum() >= max(1, prune_fraction * len(rows)):
                keep = (~finished).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, picked, mask, finished = rows[keep], picked[keep], mask[keep], finished[keep]
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
            logits = model(input_ids=picked.unsqueeze(-1), attention_mask=mask,
                           position_ids=mask.sum(-1, keepdim=True) - 1, past_key_values=cache,
                           use_cache=True).logits[:, -1]
    return tokens


def with_decoder(decoder, model, tokenizer, batches, max_new_tokens, stop_ids, temperature) -> tuple[int, int]:
    """Useful tokens and runaways of `decoder` over the batches."""
    total = runaways = 0
    for seed, texts in enumerate(batches):
        ids = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        rows = decoder(model, ids["input_ids"], ids["attention_mask"], max_new_tokens, stop_ids, temperature,
                       seed=seed)
        total += sum(len(r) for r in rows)
        runaways += sum(not any(t in stop_ids for t in r) for r in rows)
    return total, runaways


def ours(model, input_ids, attention_mask, max_new_tokens, stop_ids, temperature, seed=0):
    from offline_arena.models.decode import decode

    return decode(model, input_ids, attention_mask, max_new_tokens, stop_ids, temperature, seed=seed)[0]


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
    parser.add_argument("--one-at-a-time", action="store_true", help="also the slowest path (minutes)")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from offline_arena.models.builtin import materialise
    from offline_arena.models.dtype import compute_dtype
    from offline_arena.models.hf import TransformersGenerator, length_capped_batches
    from offline_arena.prompts import load_prompts

    chosen = compute_dtype("cpu")
    folder = materialise("smollm2-135m-instruct")
    reference = TransformersGenerator(folder, dtype="float32", progress=False)
    tokenizer, stop_ids = reference.tokenizer, reference.stop_ids
    models = {"float32": reference.model}
    if chosen != "float32":
        models[chosen] = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, chosen)).eval()

    prompts = load_prompts(f"builtin:verifiable:round1/sft:{args.prompts}")
    rendered = [reference.render(p.messages) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in rendered]
    order = sorted(range(len(rendered)), key=lambda i: lengths[i])
    batches = [[rendered[i] for i in b] for b in length_capped_batches(order, lengths, args.max_new_tokens, args.batch_size)]
    temperature = 0.0 if args.greedy else 0.7
    for model in models.values():  # warm-up: first-call allocations and kernel compilation are not measured
        plain_generate(model, tokenizer, [rendered[:2]], 4, stop_ids, temperature)
        ours(model, *tokenizer(rendered[:2], return_tensors="pt", padding=True, add_special_tokens=False).values(), 4,
             stop_ids, temperature)

    def timed(name, run):
        started = time.perf_counter()
        tokens = run()
        runaway = None
        if isinstance(tokens, tuple):
            tokens, runaway = tokens
        results[name] = (tokens, time.perf_counter() - started, runaway)

    results: dict[str, tuple[int, float, int | None]] = {}
    if args.one_at_a_time:
        timed("one at a time, float32 (FastChat-style)", lambda: plain_generate(
            models["float32"], tokenizer, [[t] for t in rendered], args.max_new_tokens, stop_ids, temperature))
    for dtype, model in models.items():
        timed(f"plain batched generate, {dtype}", lambda: plain_generate(
            model, tokenizer, batches, args.max_new_tokens, stop_ids, temperature))
    timed("previous decoder (a929e53), float32", lambda: with_decoder(
        previous_decode, models["float32"], tokenizer, batches, args.max_new_tokens, stop_ids, temperature))
    for dtype, model in models.items():
        timed(f"today's decoder, {dtype}", lambda: with_decoder(
            ours, model, tokenizer, batches, args.max_new_tokens, stop_ids, temperature))

    parameters = sum(p.numel() for p in models["float32"].parameters())
    ceilings = {dtype: matmul_ceiling_gflops(getattr(torch, dtype)) for dtype in models}
    print(f"cpu={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()} compute_dtype={chosen} "
          f"prompts={len(prompts)} (prompt tokens: {sum(lengths)}, mean {sum(lengths) / len(lengths):.0f}, "
          f"max {max(lengths)}) max_new_tokens={args.max_new_tokens} batch_size={args.batch_size} "
          f"temperature={temperature}")
    for dtype, gflops in ceilings.items():
        print(f"{dtype} matmul: {gflops:.0f} GFLOPS -> ceiling {gflops * 1e9 / (2 * parameters):.0f} tok/s for "
              f"{parameters / 1e6:.0f}M parameters (prompt tokens count against it too)")
    base_tokens, base_seconds, _ = results["plain batched generate, float32"]
    for name, (tokens, seconds, runaway) in results.items():
        rate = tokens / seconds
        dtype = "bfloat16" if "bfloat16" in name else "float32"
        ceiling = ceilings.get(dtype, ceilings["float32"]) * 1e9 / (2 * parameters)
        runaways = f", runaways {runaway}/{len(prompts)}" if runaway is not None else ""
        print(f"{name:<42} {tokens:6d} useful tokens in {seconds:6.1f}s = {rate:6.1f} tok/s "
              f"({rate / (base_tokens / base_seconds):.2f}x plain float32 generate, "
              f"{100 * rate / ceiling:.1f}% of the {dtype} ceiling{runaways})")


if __name__ == "__main__":
    main()
