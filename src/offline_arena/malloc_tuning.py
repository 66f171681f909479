"""glibc's malloc, tuned for PyTorch on the CPU: the `arena` command relaunches itself once with it.

A training step on the CPU allocates and frees activations and gradients of tens to hundreds of MB each.
glibc serves any allocation above its mmap threshold (128 KiB, rising to at most 32 MiB as it adapts) with a
fresh `mmap` and returns it to the kernel on `free`, so every step page-faults its working memory in again,
zeroed by the kernel: on the quickstart's 2 cores a third of the CPU time went to the kernel. With large
allocations up to 4 GiB kept in the heap (a DPO step's logits are ~1 GB) and the heap not trimmed below 4 GiB,
the memory is reused from step to step: the embedded model's SFT and DPO steps ran 1.3-1.6x faster here,
with the same losses (`bench/malloc_tuning.py`). PyTorch's CPU tuning guide makes the same point with
jemalloc or tcmalloc preloaded; these two glibc settings need no library installed.

glibc reads its tunables when a process starts, so they cannot be set from Python; the console script execs
itself once with `GLIBC_TUNABLES` set (children — accelerate-launched trainers, Ray workers — inherit it).
Nothing happens off Linux/glibc, when the user already tunes malloc (`GLIBC_TUNABLES` with a malloc setting,
an allocator in `LD_PRELOAD`), or with `OFFLINE_ARENA_MALLOC=system`. The cost: up to 4 GiB of freed memory
stays with the process instead of going back to the kernel.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Mapping, Sequence

HEAP_KEPT = 4 << 30  # bytes
TUNABLES = f"glibc.malloc.mmap_threshold={HEAP_KEPT}:glibc.malloc.trim_threshold={HEAP_KEPT}"
SWITCH = "OFFLINE_ARENA_MALLOC"  # "system": leave malloc alone; "tuned": set by the relaunch itself


def tuned_environment(environ: Mapping[str, str], libc: str | None = None) -> dict[str, str] | None:
    """The environment to relaunch with, or None where this process should run as it is."""
    libc = platform.libc_ver()[0] if libc is None else libc
    if sys.platform != "linux" or libc != "glibc" or environ.get(SWITCH):
        return None
    existing = environ.get("GLIBC_TUNABLES", "")
    preloaded = environ.get("LD_PRELOAD", "")
    if "glibc.malloc." in existing or any(name in preloaded for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return None  # the user's own allocator settings win
    return {**environ, SWITCH: "tuned", "GLIBC_TUNABLES": ":".join(filter(None, [existing, TUNABLES]))}


def relaunch_with_tuned_malloc(python_args: Sequence[str]) -> None:
    """Replace this process by `python PYTHON_ARGS...` (a script and its arguments: `sys.argv`) with malloc
    tuned; returns only where nothing is to do (see `tuned_environment`). Call it first thing, before any
    work this process would repeat."""
    environ = tuned_environment(os.environ)
    if environ is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *python_args], environ)
