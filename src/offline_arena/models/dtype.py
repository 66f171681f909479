"""Which floating-point type to compute in, from what the machine measurably does.

bfloat16 halves memory traffic and, on CPUs with bf16 units (AVX-512 BF16, AMX) and on GPUs, runs matmuls
several times faster than float32. On CPUs without them it is emulated and far slower: on the AVX2 EPYC
these tests run on, a 256² bf16 matmul takes ~100 ms against ~6 ms in float32 (2048²: 0.27 vs 89 GFLOPS).
The capability string torch reports does not say which case holds, so we time both once per process
and take bf16 only when it is clearly faster. `OFFLINE_ARENA_DTYPE=float32|bfloat16` overrides the choice.
"""

from __future__ import annotations

import functools
import os
import time


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast(size: int = 256, repeats: int = 3) -> bool:
    """Whether a bf16 matmul beats float32 by 1.5x on this CPU (measured, ~0.1-0.4 s once)."""
    import torch

    def seconds(dtype) -> float:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        return time.perf_counter() - started

    return seconds(torch.bfloat16) * 1.5 < seconds(torch.float32)


def compute_dtype(device: str) -> str:
    """"bfloat16" on GPUs and on CPUs whose bf16 matmuls are fast; "float32" elsewhere."""
    chosen = os.environ.get("OFFLINE_ARENA_DTYPE")
    if chosen:
        if chosen not in ("float32", "bfloat16"):
            raise ValueError(f"OFFLINE_ARENA_DTYPE must be float32 or bfloat16, got {chosen!r}")
        return chosen
    if device.startswith("cuda"):
        return "bfloat16"
    return "bfloat16" if cpu_bf16_is_fast() else "float32"
