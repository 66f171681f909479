"""glibc's malloc as it comes against large allocations kept in the heap, side by side in one run: the same
SFT and DPO steps of the embedded model (`bench/training.py`, float32 and, where the CPU has bf16 units, bf16
autocast) in two child processes that differ only in `GLIBC_TUNABLES`. Prints seconds per step, the losses
(the allocator changes no arithmetic), the CPU time the kernel took, the most memory each child held, and the
speed-up.

Why: above its mmap threshold (128 KiB, adapting up to 32 MiB) glibc maps every allocation afresh and unmaps
it on free, so each training step page-faults its activations and logits (~1 GB for a DPO step here) in
again. Kept in the heap, they are reused. Not for the whole `arena` process: a quickstart run with it held
16 GB resident by its last stage on a 24 GB machine (freed memory stays with the process). The quickstart
sets it for its launched SFT and DPO jobs only (`train.launch.env`, recipes/quickstart.yaml), whose memory
goes back when each ends.

    python bench/malloc_tuning.py [--steps 4] [--rows 24]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from offline_arena.train.launch import RU_MAXRSS_BYTES

HEAP_KEPT = 4 << 30  # bytes: allocations up to this size come from the heap, which is not trimmed below it
TUNABLES = f"glibc.malloc.mmap_threshold={HEAP_KEPT}:glibc.malloc.trim_threshold={HEAP_KEPT}"

STEP_LINE = re.compile(r"^(sft|dpo): .*$", re.M)
SECONDS = re.compile(r"(float32|bf16 autocast) ([0-9.]+) s/step, loss (\[[^]]*\])")


def run_steps(tunables: str | None, steps: int, rows: int) -> tuple[dict, float, float]:
    """{(kind, dtype): (seconds per step, losses)} of one child process, the kernel CPU seconds it used and the
    most memory it held (GB): the price of keeping freed memory in the heap."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("training.py")), "--steps", str(steps),
                              "--rows", str(rows)], env=env, stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own usage, not every child's so far
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"bench/training.py failed with exit status {child.returncode}")
    result = {}
    for line in STEP_LINE.finditer(out):
        kind = line.group(1)
        for dtype, seconds, losses in SECONDS.findall(line.group(0)):
            result[kind, dtype] = (float(seconds), losses)
    return result, usage.ru_stime, usage.ru_maxrss * RU_MAXRSS_BYTES / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", type=int, default=24)
    args = parser.parse_args()

    plain, plain_kernel, plain_peak = run_steps(None, args.steps, args.rows)
    tuned, tuned_kernel, tuned_peak = run_steps(TUNABLES, args.steps, args.rows)
    print(f"kernel CPU time: glibc default {plain_kernel:.0f} s, tuned ({TUNABLES}) {tuned_kernel:.0f} s")
    print(f"peak resident memory: glibc default {plain_peak:.1f} GB, tuned {tuned_peak:.1f} GB")
    for key, (seconds, losses) in plain.items():
        tuned_seconds, tuned_losses = tuned[key]
        print(f"{key[0]} {key[1]}: {seconds:.1f} -> {tuned_seconds:.1f} s/step, speed-up {seconds / tuned_seconds:.2f}x; "
              f"losses {'identical' if losses == tuned_losses else f'DIFFER: {losses} vs {tuned_losses}'}")


if __name__ == "__main__":
    main()
