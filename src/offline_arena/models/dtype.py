"""Which floating-point type to compute in, from what the machine measurably does.

bfloat16 halves memory traffic and, on CPUs with bf16 units (AVX-512 BF16, AMX) and on GPUs from Ampere on
(compute capability 8.0), runs matmuls several times faster than float32. On CPUs without them it is
emulated and far slower: on the AVX2 EPYC these tests ran on first, a 256² bf16 matmul took ~100 ms against
~6 ms in float32 (2048²: 0.27 vs 89 GFLOPS); on a Xeon with AMX, 2048²: 2,677 against 341 GFLOPS.
The capability string torch reports does not say which case holds, so we time both and take bf16 only when
it is clearly faster. `OFFLINE_ARENA_DTYPE=float32|bfloat16` overrides the choice.

The answer is measured once per machine and kept (`cache_root()/cpu_bf16.json`, keyed by the CPU and torch):
every process of a run must compute in the same dtype, or the same model gets two fingerprints and a
resumed run answers otherwise than the run it resumes. Measured per process, a busy moment once tipped a
resumed run into bf16 where its start had computed in float32 (seen on an EPYC with AVX-512 BF16, under the
test suite's load); launched ranks and Ray actors could disagree the same way. Processes started together
on a cold cache take a lock: the first measures and writes, the others wait and read its answer.

A GPU computes in bf16 where it has bf16 units, and in float32 where torch only emulates bf16 (before
Ampere: V100, T4); `gpu_compute_dtype` says why float32 rather than float16.

Answers computed in different dtypes are other answers: `fingerprint.keyed_by_dtype` keeps them apart in the
store, on every device.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import platform
import time
from pathlib import Path

CACHE_NAME = "cpu_bf16.json"
DTYPES = ("float32", "bfloat16")


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


def _known(path: Path) -> dict:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast() -> bool:
    """`measure_cpu_bf16_is_fast` once per machine: read from the cache when this CPU and torch were measured
    before, else measured and written there. Processes that find the cache cold at once (a launched job's
    ranks, a pool's Ray actors) queue on a lock file: the first measures and writes, the others then read its
    answer, so no two of them ever compute in different dtypes."""
    from .builtin import cache_root

    path, key = cache_root() / CACHE_NAME, _machine_key()
    if isinstance(known := _known(path).get(key), bool):
        return known
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(f"{path.name}.lock"), "a")
    except OSError:
        return measure_cpu_bf16_is_fast()  # a read-only cache: every process measures
    with lock:  # closing it releases the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = _known(path)
        if isinstance(known.get(key), bool):  # measured by the process that held the lock before us
            return known[key]
        fast = measure_cpu_bf16_is_fast()
        try:
            # Written whole then renamed: readers outside the lock (the quick look above) never see half a file.
            partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps({**known, key: fast}, indent=1))
            os.replace(partial, path)
        except OSError:
            pass
        return fast


def _checked(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"OFFLINE_ARENA_DTYPE must be float32 or bfloat16, got {dtype!r}")
    return dtype


def gpu_compute_dtype(capability: tuple[int, int], bf16_supported: bool | None, override: str | None = None) -> str:
    """The dtype a GPU computes in, from what torch reports of it. `override`: OFFLINE_ARENA_DTYPE, which wins.
    `bf16_supported`: `torch.cuda.is_bf16_supported(including_emulation=False)` (True on ROCm), or None where
    torch has no such argument; then the compute capability decides (8.0, Ampere, brought bf16 units).

    Without native bf16, float32 rather than float16: float16's range ends at 65504, and models trained in
    bf16 have activations past it, which turn into inf and NaN, that is into wrong answers and training
    signal rather than an error; the trainers here have no float16 loss scaling; and float32 computes as the
    CPU path does. It costs speed and twice a 16-bit model's memory; OFFLINE_ARENA_DTYPE=bfloat16 still
    chooses emulated bf16 where that memory matters more."""
    if override:
        return _checked(override)
    native = bf16_supported if bf16_supported is not None else tuple(capability) >= (8, 0)
    return "bfloat16" if native else "float32"


def _gpu_reports(device: str) -> tuple[tuple[int, int], bool | None]:
    """What `gpu_compute_dtype` needs to know of `device`: its compute capability and native bf16, when
    this torch can say without counting emulation (its default, `including_emulation=True`, calls a V100's
    emulated bf16 supported)."""
    import inspect

    import torch

    capability = torch.cuda.get_device_capability(device)
    if "including_emulation" not in inspect.signature(torch.cuda.is_bf16_supported).parameters:
        return capability, None
    with torch.cuda.device(device):  # it asks about the current device
        return capability, torch.cuda.is_bf16_supported(including_emulation=False)


def compute_dtype(device: str) -> str:
    """"bfloat16" on GPUs with native bf16 and on CPUs whose bf16 matmuls are fast; "float32" elsewhere;
    OFFLINE_ARENA_DTYPE=float32|bfloat16 overrides."""
    override = os.environ.get("OFFLINE_ARENA_DTYPE")
    if override:
        return _checked(override)
    if device.startswith("cuda"):
        return gpu_compute_dtype(*_gpu_reports(device))
    return "bfloat16" if cpu_bf16_is_fast() else "float32"
