"""Which floating-point type to compute in, from what the machine measurably does.

bfloat16 halves memory traffic and, on CPUs with bf16 units (AVX-512 BF16, AMX) and on GPUs, runs matmuls
several times faster than float32. On CPUs without them it is emulated and far slower: on the AVX2 EPYC
these tests ran on first, a 256² bf16 matmul took ~100 ms against ~6 ms in float32 (2048²: 0.27 vs 89 GFLOPS);
on a Xeon with AMX, 2048²: 2,677 against 341 GFLOPS.
The capability string torch reports does not say which case holds, so we time both and take bf16 only when
it is clearly faster. `OFFLINE_ARENA_DTYPE=float32|bfloat16` overrides the choice.

The answer is measured once per machine and kept (`cache_root()/cpu_bf16.json`, keyed by the CPU and torch):
every process of a run must compute in the same dtype, or the same model gets two fingerprints and a
resumed run answers otherwise than the run it resumes. Measured per process, a busy moment once tipped a
resumed run into bf16 where its start had computed in float32 (seen on an EPYC with AVX-512 BF16, under the
test suite's load); launched ranks and Ray actors could disagree the same way.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from pathlib import Path

CACHE_NAME = "cpu_bf16.json"


def _seconds(dtype, size: int) -> float:
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up: the first bf16 product also JIT-compiles oneDNN's kernel
    started = time.perf_counter()
    a @ b
    return time.perf_counter() - started


def _bf16_over_float32(size: int, repeats: int) -> float:
    """Best bf16 time over best float32 time, the two timed in turn, so that a busy moment slows both."""
    import torch

    bf16, fp32 = [], []
    for _ in range(repeats):
        bf16.append(_seconds(torch.bfloat16, size))
        fp32.append(_seconds(torch.float32, size))
    return min(bf16) / min(fp32)


def measure_cpu_bf16_is_fast() -> bool:
    """Whether a bf16 matmul beats float32 by 1.5x on this CPU (< 0.1 s).

    A 128² product first: emulated bf16 is ~100x slower, so that answers at once without a long wait. Then
    512², the best of seven each: at 256² one product takes ~0.1 ms on AMX, where timer noise and the first
    call's kernel compilation decided the answer (a Xeon with AMX was once judged "not fast" there).
    """
    if _bf16_over_float32(128, 3) > 4:
        return False
    return _bf16_over_float32(512, 7) * 1.5 < 1


def _machine_key() -> str:
    """The CPU (its model and feature flags, which name AMX and AVX-512 BF16) and the torch build."""
    import hashlib

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))]
        cpu = "\n".join(dict.fromkeys(lines)) or cpu
    except OSError:
        pass
    return hashlib.sha256(f"{cpu}|torch {torch.__version__}".encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast() -> bool:
    """`measure_cpu_bf16_is_fast` once per machine: read from the cache when this CPU and torch were measured
    before, else measured and written there (atomically: a concurrent process writes the same answer)."""
    from .builtin import cache_root

    path, key = cache_root() / CACHE_NAME, _machine_key()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), bool):
        return known[key]
    fast = measure_cpu_bf16_is_fast()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({**known, key: fast}, indent=1))
        os.replace(partial, path)
    except OSError:
        pass  # a read-only cache: every process measures, as before
    return fast


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
