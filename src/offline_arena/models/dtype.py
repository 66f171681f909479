"""Which floating-point type to compute in, from what the machine measurably does.

bfloat16 halves memory traffic and, on CPUs with bf16 units (AVX-512 BF16, AMX) and on GPUs, runs matmuls
several times faster than float32. On CPUs without them it is emulated and far slower: on the AVX2 EPYC
these tests ran on first, a 256² bf16 matmul took ~100 ms against ~6 ms in float32 (2048²: 0.27 vs 89 GFLOPS);
on a Xeon with AMX, 2048²: 2,677 against 341 GFLOPS.
The capability string torch reports does not say which case holds, so we time both once per process
and take bf16 only when it is clearly faster. `OFFLINE_ARENA_DTYPE=float32|bfloat16` overrides the choice.
"""

from __future__ import annotations

import functools
import os
import time


def _best_seconds(dtype, size: int, repeats: int) -> float:
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up: the first bf16 product also JIT-compiles oneDNN's kernel
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return best


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast() -> bool:
    """Whether a bf16 matmul beats float32 by 1.5x on this CPU (measured once per process, < 0.1 s).

    A 128² product first: emulated bf16 is ~100x slower, so that answers at once without a long wait. Then
    512², the best of five each: at 256² one product takes ~0.1 ms on AMX, where timer noise and the first
    call's kernel compilation decided the answer (a Xeon with AMX was once judged "not fast" there).
    """
    import torch

    if _best_seconds(torch.bfloat16, 128, 3) > 4 * _best_seconds(torch.float32, 128, 3):
        return False
    return _best_seconds(torch.bfloat16, 512, 5) * 1.5 < _best_seconds(torch.float32, 512, 5)


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
