"""Batched decoding that stops paying for finished rows.

`model.generate` runs a batch until its *longest* row stops: one runaway keeps every finished row in the
batch, decoding padding, to the token limit. On a CPU a decode step costs roughly a fixed part plus a part
per row (SmolLM2-135M, 2 AVX2 cores: ~85 ms + ~3-5 ms a row), so carrying finished rows is pure waste.
This loop drops them from the batch (and from the KV cache, `DynamicCache.batch_select_indices`) as soon
as enough have finished to be worth the re-indexing.

Why our own loop and not transformers' continuous batching (`generate_batch`, paged attention): on these
CPUs it measured 30 useful tok/s against ~45 for plain `generate` on the same 32 prompts (transformers
5.23; it is built for GPUs and CUDA graphs). Dropping rows needs only the public cache API.

Sampling is plain: softmax(logits / temperature), then top-k / top-p if asked; nothing is inherited
from a checkpoint's `generation_config` (a repetition penalty or `min_p` saved with a model would
silently change what "temperature 0.7" means, and PPO's log-probs assume plain sampling). Greedy picks
the arg-max, as `generate` does.
"""

from __future__ import annotations

from typing import Sequence


def _pick(logits, temperature: float, top_p: float, top_k: int, generator):
    import torch

    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, index = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(ordered, dim=-1) > top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(-1, index, ordered.masked_fill(drop, float("-inf")))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


def decode(model, input_ids, attention_mask, max_new_tokens: int, stop_ids: Sequence[int], temperature: float = 0.0,
           top_p: float = 1.0, top_k: int = 0, seed: int = 0, prune_fraction: float = 0.125):
    """New tokens for each row of a left-padded batch, each list ending at (and including) its first stop
    token or at `max_new_tokens`. Also returns the number of rows computed at each step (what the batch
    cost). Finished rows leave the batch once they are at least `prune_fraction` of it (0: at once)."""
    import torch
    from transformers import DynamicCache

    generator = torch.Generator(device=input_ids.device).manual_seed(seed)
    stops = torch.tensor(sorted(set(int(i) for i in stop_ids)), device=input_ids.device)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)  # original index of each live row
    tokens: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    cache = DynamicCache(config=model.config)
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as generate() numbers left-padded prompts
    computed: list[int] = []
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1]
        for step in range(max_new_tokens):
            computed.append(len(rows))
            picked = _pick(logits, temperature, top_p, top_k, generator)
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
            positions = mask.sum(-1, keepdim=True) - 1
            logits = model(input_ids=picked.unsqueeze(-1), attention_mask=mask, position_ids=positions,
                           past_key_values=cache, use_cache=True).logits[:, -1]
    return tokens, computed
