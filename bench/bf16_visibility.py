"""How much of a small update an evaluation in bfloat16 can see.

    python bench/bf16_visibility.py BEFORE_CHECKPOINT AFTER_CHECKPOINT

Prints, for two float32 checkpoints of the same model (e.g. the quickstart's DPO model and the one PPO step
after it): the share of weights that differ, the largest difference, the median |weight|, and the share that
still differ once both are cast to bfloat16, as an evaluation in bf16 loads them. An update far below bf16's
resolution (8 significant bits: a step of 2^(floor(log2 |w|) - 7)) is seen only as the few weights that happen to cross a rounding
boundary, each moved by a whole bf16 step: noise, not the update (recipes/quickstart.yaml, RM + PPO).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def main(before_dir: str, after_dir: str) -> None:
    before = load_file(Path(before_dir) / "model.safetensors")
    after = load_file(Path(after_dir) / "model.safetensors")
    total = changed = changed_bf16 = 0
    largest = 0.0
    for name, weight in before.items():
        other = after[name]
        total += weight.numel()
        changed += (weight != other).sum().item()
        changed_bf16 += (weight.bfloat16() != other.bfloat16()).sum().item()
        largest = max(largest, (weight.float() - other.float()).abs().max().item())
    median = torch.cat([w.flatten().abs().float() for w in before.values()]).median().item()
    step = 2.0 ** (math.floor(math.log2(median)) - 7)  # bf16 keeps 7 bits after the leading one
    print(f"weights {total}: changed {changed / total:.3f} in float32 (largest {largest:.3g}); median |w| {median:.3g} "
          f"(bf16 step there {step:.2g}); changed after the bf16 cast {changed_bf16 / total:.4f} ({changed_bf16})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
