"""SFT and DPO steps on the embedded model, float32 against bf16 autocast (float32 master weights), same data,
one run: seconds per step and the loss curves side by side.

bf16 pays only where the hardware has bf16 units (GPUs; CPUs with AVX-512 BF16 / AMX). Elsewhere torch
emulates it, hundreds of times slower than float32 (measured here first): then the bf16 half is skipped
and the measured matmul rates say why.

    python bench/training.py [--steps 3] [--rows 24] [--force-bf16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def rows_for(n: int) -> tuple[list[dict], list[dict]]:
    from offline_arena.prompts import load_prompts
    from offline_arena.prompts.repair import repair_answer

    sft, dpo = [], []
    for p in load_prompts(f"builtin:verifiable:round1/sft:{n}"):
        draft = "Here is a short answer. It covers the main point, and it ends here."
        fixed, _ = repair_answer(draft, p.meta["constraints"])
        sft.append({"messages": [*p.messages, {"role": "assistant", "content": fixed}]})
        dpo.append({"prompt": list(p.messages), "chosen": [{"role": "assistant", "content": fixed}],
                    "rejected": [{"role": "assistant", "content": draft}]})
    return sft, dpo


def gflops(dtype, size: int = 1024) -> float:
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    a @ b
    return 2 * size ** 3 / (time.perf_counter() - started) / 1e9


def run(kind: str, dtype: str, rows, steps: int, out: Path) -> tuple[float, list[float]]:
    from offline_arena.models.builtin import materialise
    from offline_arena.train.common import TrainSettings

    os.environ["OFFLINE_ARENA_DTYPE"] = dtype  # trl_args turns bf16 autocast on for "bfloat16"
    settings = TrainSettings(learning_rate=1e-5, epochs=1, max_steps=steps, batch_size=4, max_length=384,
                             probe_prompts=0, extra={"beta": 0.1} if kind == "dpo" else {})
    if kind == "sft":
        from offline_arena.train.sft import train_sft as train
    else:
        from offline_arena.train.dpo import train_dpo as train
    result = train(materialise("smollm2-135m-instruct"), rows, out / f"{kind}-{dtype}", settings, [])
    return result.metrics["train_seconds"] / steps, result.metrics["loss_curve"]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--force-bf16", action="store_true", help="run bf16 even where it is emulated")
    args = parser.parse_args()

    from offline_arena.models.dtype import cpu_bf16_is_fast

    f32, bf16 = gflops(torch.float32), gflops(torch.bfloat16, size=256)
    fast = torch.cuda.is_available() or cpu_bf16_is_fast()
    print(f"cpu={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()} matmul: float32 "
          f"{f32:.0f} GFLOPS, bfloat16 {bf16:.1f} GFLOPS -> bf16 {'used' if fast else 'not used (emulated)'}")
    sft_rows, dpo_rows = rows_for(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        for kind, rows in (("sft", sft_rows), ("dpo", dpo_rows)):
            seconds, curve = run(kind, "float32", rows, args.steps, Path(tmp))
            line = f"{kind}: float32 {seconds:.1f} s/step, loss {['%.3f' % x for x in curve]}"
            if fast or args.force_bf16:
                seconds_bf16, curve_bf16 = run(kind, "bfloat16", rows, args.steps, Path(tmp))
                line += (f"; bf16 autocast {seconds_bf16:.1f} s/step, loss {['%.3f' % x for x in curve_bf16]}; "
                         f"speed-up {seconds / seconds_bf16:.2f}x")
            else:
                line += f"; bf16 skipped: emulated on this CPU ({f32 / max(bf16, 1e-9):.0f}x slower matmuls)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
