"""Generation with transformers: batched, prompts bucketed by length, left padding, stopping on the
end-of-turn token, finished rows dropped from the batch (models/decode.py).

Why batching matters here: on a 2-core CPU a 135M model is bound by per-step overhead, not FLOPs, so
generating 16 prompts in one forward pass per step costs little more than one (bench/generation.py
measures the ratio against FastChat's one-prompt-at-a-time loop). Sorting prompts by length before
cutting batches keeps the left padding, and so the wasted compute, small.
"""

from __future__ import annotations

import os
from itertools import groupby
from pathlib import Path
from typing import Sequence

from .base import Completion, GenerationRequest, canonical_json, seed_from
from .chat import render_prompt, stop_token_ids


# A batch's decode attends over its longest prompt on every row, so one long prompt among short ones
# multiplies the work of the whole batch (seen: a 2,561-token IFBench prompt in a batch of 22 took longer
# than the 128 other answers). On a CPU, batches are cut so that rows x (longest prompt + new tokens) stays
# under this many tokens; a GPU has the parallelism to absorb the padding and is bounded by memory alone
# (`batch_token_budget`). The cap was 16K when the prefill padded every row to the longest prompt; since
# prefill goes in chunks of similar length (decode.py) padding costs only attention, and a decode step's
# fixed cost (~60 ms on 2 cores, against ~1.7 ms a row, bf16) favours wide batches: the quickstart's 96
# held-out prompts (budgets 128-312 tokens) took 52.5 s in three batches under 16K, 35.2 s in one
# (bench/eval_batching.py). Sorting by prompt length still keeps long prompts together.
MAX_BATCH_TOKENS = 1 << 17
# Rows a batch may hold when the recipe sets no batch size: on 2 AVX2 cores a decode step of the 135M
# model costs ~85 ms + ~4 ms a row, so per-row throughput still rises at 128 rows (bench/batching.py).
MAX_ROWS = 128
# Of the memory free when the model is loaded, the share one batch's KV cache may take (activations,
# logits, the allocator's slack and the rest of the process need the remainder).
KV_CACHE_SHARE = 0.4


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    """KV-cache bytes one token costs: keys and values of every layer's key/value heads."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * dtype_bytes


def free_memory_bytes(device: str) -> int:
    """Memory free for a batch now: the GPU's free memory, or the machine's available RAM."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux: assume a laptop's few free GiB
        return 4 << 30


def batch_token_budget(model, device: str) -> int:
    """Padded tokens (rows x (prompt + new tokens)) a batch may hold: what the KV cache's share of the free
    memory fits and, on a CPU, the padding cap above."""
    per_token = kv_bytes_per_token(model.config, next(model.parameters()).element_size())
    by_memory = max(1024, int(free_memory_bytes(device) * KV_CACHE_SHARE) // per_token)
    return by_memory if device.startswith("cuda") else min(by_memory, MAX_BATCH_TOKENS)


def length_capped_batches(indices: list[int], lengths: Sequence[int], max_new_tokens: int | Sequence[int],
                          batch_size: int, max_batch_tokens: int = MAX_BATCH_TOKENS) -> list[list[int]]:
    """Consecutive batches of `indices` (sorted by prompt length): at most `batch_size` rows, and at most
    `max_batch_tokens` padded tokens unless a single row exceeds that alone. `max_new_tokens`: one limit,
    or each index's own (a batch is as wide as its longest prompt plus its largest limit)."""
    budget = (lambda i: max_new_tokens) if isinstance(max_new_tokens, int) else (lambda i: max_new_tokens[i])
    batches: list[list[int]] = []
    for i in indices:
        if batches:
            batch = batches[-1]
            longest = max(lengths[j] for j in batch + [i]) + max(budget(j) for j in batch + [i])
            if len(batch) < batch_size and (len(batch) + 1) * longest <= max_batch_tokens:
                batch.append(i)
                continue
        batches.append([i])
    return batches


class TransformersGenerator:
    def __init__(self, model_path: str | Path, fingerprint: str | None = None, batch_size: int | None = None,
                 device: str | None = None, dtype: str | None = None, progress: bool = True):
        """`batch_size`: the most rows a batch holds (None: up to MAX_ROWS); batches are also cut by length
        and memory (`batch_token_budget`)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = str(model_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        from .dtype import compute_dtype

        dtype = dtype or compute_dtype(self.device)
        torch_dtype = getattr(torch, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype).to(self.device)
        self.model.eval()
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config)
        self.batch_size = batch_size or MAX_ROWS
        self.max_batch_tokens = batch_token_budget(self.model, self.device)
        self.progress = progress
        from .fingerprint import keyed_by_dtype

        self.fingerprint = keyed_by_dtype(fingerprint or local_fingerprint(self.model_path), dtype)
        self.autocast = None  # loaded in the dtype it computes in
        self.num_generated = 0  # completions produced by this instance (cache hits never reach here)
        self.rows_decoded = 0  # decode steps summed over rows: the work generation actually did
        self.batches_run = 0  # batches decoded (how generation was cut)

    @classmethod
    def from_model(cls, model, tokenizer, fingerprint: str, batch_size: int | None = None) -> "TransformersGenerator":
        """Wrap a model already in memory (a trainer's policy, a pico test model)."""
        self = cls.__new__(cls)
        self.model_path, self.model, self.tokenizer = "<in-memory>", model, tokenizer
        self.device = str(next(model.parameters()).device)
        tokenizer.padding_side = "left"
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.batch_size, self.progress, self.fingerprint, self.num_generated = batch_size or MAX_ROWS, True, fingerprint, 0
        self.rows_decoded = self.batches_run = 0
        self.max_batch_tokens = batch_token_budget(model, self.device)
        # A trainer's policy keeps float32 master weights; where bf16 is fast it decodes (guard probes) in
        # bf16 autocast, as it trains.
        import torch

        from .dtype import compute_dtype

        weights_fp32 = next(model.parameters()).dtype == torch.float32
        self.autocast = "bfloat16" if weights_fp32 and compute_dtype(self.device) == "bfloat16" else None
        return self

    def render(self, messages) -> str:
        return render_prompt(self.tokenizer, messages)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        from ..progress import progress_bar

        rendered = [self.render(r.messages) for r in requests]
        lengths = [len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered]
        # Requests that sample alike can share a batch, whatever their token limits (each row stops at its
        # own: prompts have length budgets); within them, similar lengths do.
        sampling = [canonical_json({**requests[i].params.to_dict(), "max_new_tokens": None}) for i in range(len(requests))]
        order = sorted(range(len(requests)), key=lambda i: (sampling[i], lengths[i]))
        limits = [r.params.max_new_tokens for r in requests]
        results: list[Completion | None] = [None] * len(requests)
        bar = progress_bar(len(requests), "generate", "answer", self.progress)
        for _, group in groupby(order, key=lambda i: sampling[i]):
            for batch in length_capped_batches(list(group), lengths, limits, self.batch_size, self.max_batch_tokens):
                outputs = self._generate_batch([rendered[i] for i in batch], [requests[i] for i in batch])
                for i, completion in zip(batch, outputs):
                    results[i] = completion
                bar.update(len(batch))
        bar.close()
        self.num_generated += len(requests)
        return results  # type: ignore[return-value]

    def _generate_batch(self, prompts: list[str], requests: list[GenerationRequest]) -> list[Completion]:
        from .decode import decode

        params = requests[0].params
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        # One seed per batch, derived from what the batch contains: the same requests give the same text.
        with self._compute_context():
            new_tokens, computed = decode(self.model, inputs["input_ids"], inputs["attention_mask"],
                                          [r.params.max_new_tokens for r in requests], self.stop_ids,
                                          params.temperature, params.top_p,
                                          params.top_k, seed=_batch_seed(prompts, requests))
        self.rows_decoded += sum(computed)  # what the batches cost, in row-steps (finished rows are dropped)
        self.batches_run += 1
        return [self._to_completion(tokens) for tokens in new_tokens]

    def _compute_context(self):
        import contextlib

        import torch

        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=getattr(torch, self.autocast))

    def _to_completion(self, tokens: list[int]) -> Completion:
        stop_at = next((i for i, t in enumerate(tokens) if t in self.stop_ids), None)
        kept = tokens if stop_at is None else tokens[:stop_at]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text.strip(), stopped=stop_at is not None,
                          num_tokens=len(kept) + (stop_at is not None))


def _batch_seed(prompts: list[str], requests: list[GenerationRequest]) -> int:
    return seed_from(canonical_json([[p, r.seed, r.sample_index] for p, r in zip(prompts, requests)]))


def local_fingerprint(model_path: str) -> str:
    path = Path(model_path)
    if path.is_dir():
        from .fingerprint import folder_fingerprint

        return f"hf:{path.name}:{folder_fingerprint(path)}"
    try:  # a Hub id already in the local cache: fingerprint the snapshot folder it resolves to
        from huggingface_hub import snapshot_download

        return local_fingerprint(snapshot_download(model_path, local_files_only=True))
    except Exception:
        return f"hf:{model_path}"
