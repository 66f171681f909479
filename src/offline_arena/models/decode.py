"""Batched decoding that stops paying for padding, for finished rows and for copying its own cache.

Three kinds of waste in `model.generate` on a CPU, each measured on SmolLM2-135M, 64 quickstart prompts
(2 cores; bench/generation.py prints the whole comparison):

- **Padding in the prefill.** A left-padded batch is as wide as its longest prompt: 64 prompts of 53-183
  tokens (mean 103) cost 11.7K prompt tokens for 6.6K real ones. And a CPU's prefill gets *slower per token*
  as the batch grows past its caches (bf16, AMX: 3,000 tok/s at 16 x 190 tokens, 2,200 at 64 x 190, 1,500
  at 256 x 190). So the prompts are prefilled in chunks of similar length, each about `prefill_tokens`
  wide, and their keys/values written into one cache for the batch's decode.
- **Copying the cache.** `DynamicCache` grows by `torch.cat`, copying every layer's keys and values at
  every step; the preallocated layer below writes in place (a bf16 decode step at 64 rows: 103 -> 86 ms).
- **Finished rows.** `generate` runs a batch until its *longest* row stops: one runaway keeps every finished
  row decoding padding to the token limit. Here finished rows leave the batch (and the cache) as soon as
  enough have finished to be worth the re-indexing.

Why our own loop and not transformers' continuous batching (`generate_batch`, paged attention): on these
CPUs it measured 30 useful tok/s against ~45 for plain `generate` on the same 32 prompts (transformers
5.23; it is built for GPUs and CUDA graphs), and `torch.compile` with a static cache made a bf16 step
slower (125 ms against 86, after 43 s of compiling). What we need is the public cache API.

Sampling is plain: softmax(logits / temperature), then top-k / top-p if asked; nothing is inherited
from a checkpoint's `generation_config` (a repetition penalty or `min_p` saved with a model would
silently change what "temperature 0.7" means, and PPO's log-probs assume plain sampling). Greedy picks
the arg-max, as `generate` does.
"""

from __future__ import annotations

from typing import Sequence

from transformers.cache_utils import DynamicLayer  # decode.py is imported only when a model generates

# Prompt tokens (rows x padded width) one prefill chunk holds on a CPU. Smaller chunks waste less padding
# and stay in cache, larger ones amortise per-call overhead; ~2K measured best for the 135M model here.
# GPUs have the parallelism for whole batches (`decode(prefill_tokens=None)` prefills in one pass).
CPU_PREFILL_TOKENS = 2048


def _pick(logits, temperature: float, top_p: float, top_k: int, generator):
    import torch

    logits = logits.float()  # bf16 arg-max and softmax are slow on CPUs; float32 picks the same arg-max
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, index = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
        # Keep the smallest set reaching top_p: an entry goes once the ones before it reach p (`>=`, as
        # transformers' TopPLogitsWarper, so a boundary hit exactly keeps no extra entry).
        drop = cumulative - torch.softmax(ordered, dim=-1) >= top_p
        logits = logits.scatter(-1, index, ordered.masked_fill(drop, float("-inf")))
    return _sample(torch.softmax(logits, dim=-1), generator)


def _sample(probs, generator):
    """One token per row, drawn from `probs` by inverting the cumulative distribution: one uniform number a
    row. `torch.multinomial` draws an exponential for every vocabulary entry instead (49K a row): 56 ms a
    step at 64 rows on 2 cores, a third of a bf16 decode step, against 1 ms here."""
    import torch

    cumulative = probs.cumsum(-1)
    uniform = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device) * cumulative[:, -1:]
    picked = torch.searchsorted(cumulative, uniform, right=True).squeeze(-1)  # never a zero-probability entry
    last_possible = probs.shape[-1] - 1 - (probs.flip(-1) > 0).int().argmax(-1)  # u rounded up to the total
    return torch.minimum(picked, last_possible)


def prefill_chunks(lengths: Sequence[int], max_tokens: int | None) -> list[list[int]]:
    """Row indices grouped for prefilling: rows of similar length together (sorted), each group at most
    `max_tokens` rows x its longest prompt (a single longer row alone). None: one group of every row."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if max_tokens is None:
        return [order]
    chunks: list[list[int]] = []
    for i in order:
        if chunks and (len(chunks[-1]) + 1) * lengths[i] <= max_tokens:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def _preallocated_cache(model, batch: int, capacity: int):
    """A DynamicCache whose layers hold `capacity` positions for `batch` rows from the start, or None
    where the model's cache is not plain full attention (sliding windows, linear attention, ...)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [PreallocatedLayer(batch, capacity) for _ in cache.layers]
    return cache


class PreallocatedLayer(DynamicLayer):
    """A full-attention cache layer whose keys and values live in buffers sized for the whole answer:
    `update` writes the new position in place and returns views of the filled part (DynamicLayer's
    `torch.cat` copies the whole layer every step). Rows are written by `write_rows` after a chunked
    prefill; `batch_select_indices` drops finished rows as DynamicLayer's does."""

    def __init__(self, batch: int, capacity: int):
        super().__init__()
        self.batch, self.capacity, self.length = batch, capacity, 0

    def _allocate(self, like_keys, like_values) -> None:
        self.dtype, self.device = like_keys.dtype, like_keys.device
        heads = like_keys.shape[1]
        self._keys = like_keys.new_zeros(self.batch, heads, self.capacity, like_keys.shape[-1])
        self._values = like_values.new_zeros(self.batch, heads, self.capacity, like_values.shape[-1])
        self.is_initialized = True

    def _views(self):
        self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]
        return self.keys, self.values

    def write_rows(self, rows, end: int, keys, values) -> None:
        """Keys/values of a prefill chunk for `rows`, ending at position `end` (prompts are left-padded)."""
        if not self.is_initialized:
            self._allocate(keys, values)
        width = keys.shape[-2]
        self._keys[rows, :, end - width:end] = keys
        self._values[rows, :, end - width:end] = values
        self.length = max(self.length, end)
        self._views()

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self._allocate(key_states, value_states)
        step = key_states.shape[-2]
        if self.length + step > self.capacity:
            raise RuntimeError(f"decode cache full: {self.length} + {step} positions > capacity {self.capacity}")
        self._keys[:, :, self.length:self.length + step] = key_states
        self._values[:, :, self.length:self.length + step] = value_states
        self.length += step
        return self._views()

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices) -> None:
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self.batch = len(indices)
            self._views()

    def crop(self, tokens_to_remove: int) -> None:  # pragma: no cover - never asked of a decode cache
        raise NotImplementedError("PreallocatedLayer does not crop")


def _prefill(model, input_ids, mask, positions, capacity: int, prefill_tokens: int | None):
    """Last-position logits of every row and the cache holding the prompts, prefilled chunk by chunk."""
    import torch
    from transformers import DynamicCache

    cache = _preallocated_cache(model, input_ids.shape[0], capacity)
    if cache is None:  # not plain full attention: one prefill into transformers' own growing cache
        cache = DynamicCache(config=model.config)
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1]
        return logits, cache
    width = input_ids.shape[1]
    lengths = mask.sum(-1).tolist()
    logits = None
    for chunk in prefill_chunks(lengths, prefill_tokens):
        rows = torch.tensor(chunk, device=input_ids.device)
        own = max(1, max(lengths[i] for i in chunk))  # the chunk's own padded width, right-aligned in the batch
        part = DynamicCache(config=model.config)
        out = model(input_ids=input_ids[rows, width - own:], attention_mask=mask[rows, width - own:],
                    position_ids=positions[rows, width - own:], past_key_values=part, use_cache=True,
                    logits_to_keep=1).logits[:, -1]
        if logits is None:
            logits = out.new_empty(input_ids.shape[0], out.shape[-1])
        logits[rows] = out
        for into, layer in zip(cache.layers, part.layers):
            into.write_rows(rows, width, layer.keys, layer.values)
    return logits, cache


def decode(model, input_ids, attention_mask, max_new_tokens: int | Sequence[int], stop_ids: Sequence[int],
           temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0, prune_fraction: float = 0.125,
           prefill_tokens: int | None | str = "auto"):
    """New tokens for each row of a left-padded batch, each list ending at (and including) its first stop
    token or at its token limit: `max_new_tokens`, one for all rows or one per row (each prompt's length
    budget: a row that reaches its own limit leaves the batch like a finished one). Also returns the number
    of rows computed at each step (what the batch cost). Finished rows leave the batch once they are at
    least `prune_fraction` of it (0: at once). `prefill_tokens`: the prompt tokens of one prefill chunk
    ("auto": CPU_PREFILL_TOKENS on a CPU, one chunk on a GPU; None: one chunk)."""
    import torch

    if prefill_tokens == "auto":
        prefill_tokens = CPU_PREFILL_TOKENS if input_ids.device.type == "cpu" else None
    batch = input_ids.shape[0]
    limits = [int(max_new_tokens)] * batch if isinstance(max_new_tokens, int) else [int(n) for n in max_new_tokens]
    if len(limits) != batch or min(limits) < 1:
        raise ValueError(f"decode: token limits {limits} for a batch of {batch} rows (each must be >= 1)")
    max_new_tokens = max(limits)
    limits = torch.tensor(limits, device=input_ids.device)
    generator = torch.Generator(device=input_ids.device).manual_seed(seed)
    stops = torch.tensor(sorted(set(int(i) for i in stop_ids)), device=input_ids.device)
    rows = torch.arange(batch, device=input_ids.device)  # original index of each live row
    tokens: list[list[int]] = [[] for _ in range(batch)]
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as generate() numbers left-padded prompts
    computed: list[int] = []
    with torch.inference_mode():
        logits, cache = _prefill(model, input_ids, mask, positions, input_ids.shape[1] + max_new_tokens,
                                 prefill_tokens)
        for step in range(max_new_tokens):
            computed.append(len(rows))
            picked = _pick(logits, temperature, top_p, top_k, generator)
            for row, token, done in zip(rows.tolist(), picked.tolist(), finished.tolist()):
                if not done:
                    tokens[row].append(token)
            finished |= torch.isin(picked, stops) | (limits <= step + 1)
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            if finished.sum() >= max(1, prune_fraction * len(rows)):
                keep = (~finished).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, picked, mask, finished, limits = rows[keep], picked[keep], mask[keep], finished[keep], limits[keep]
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
            positions = mask.sum(-1, keepdim=True) - 1
            logits = model(input_ids=picked.unsqueeze(-1), attention_mask=mask, position_ids=positions,
                           past_key_values=cache, use_cache=True).logits[:, -1]
    return tokens, computed
