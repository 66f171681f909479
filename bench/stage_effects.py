"""What each kind of stage did to the model it started from, over many run folders.

    python bench/stage_effects.py RUN_DIR [RUN_DIR ...]

For every finished stage of every run: the change in held-out prompt-level strict accuracy and in the IFEval
subset's prompt- and instruction-level strict accuracy against the model the stage started from (the stage
before it in the run, else the base), then the mean per stage kind and how many stages went down and up.

One stage against its start is a single draw: on 96 held-out prompts a stage flips 15-30 instructions each way
(docs/measurements.md), so only the mean over many stages says what a kind of stage does. Run folders that
share a stage (a copy continued with more rounds) count it once (`verdicts_key`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path


def scores(eval_json: Path) -> dict:
    result = json.loads(eval_json.read_text())
    ifeval = (result.get("suites") or {}).get("ifeval") or {}
    strict = ifeval.get("strict") or {}
    return {"held-out": result["heldout"]["prompt_strict"],
            "IFEval prompt": strict.get("prompt_level"), "IFEval instr.": strict.get("instruction_level")}


def verdicts_key(stage_dir: Path) -> str:
    """A stage's identity across run folders (a copy continued, or a run that repeats another's first stages):
    its per-prompt held-out verdicts and IFEval scores, which the same checkpoint reproduces exactly; the
    eval.json bytes differ (they name the folder)."""
    result = json.loads((stage_dir / "eval.json").read_text())
    ifeval = (result.get("suites") or {}).get("ifeval") or {}
    return hashlib.sha256(json.dumps([result["heldout"]["per_prompt"], ifeval.get("strict")]).encode()).hexdigest()


def stage_effects(run: Path) -> list[tuple[str, str, str, dict]]:
    """(key, stage name, kind, change) of each evaluated stage of `run`, in run order."""
    recipe = json.loads((run / "recipe.json").read_text())
    order = [s["kind"] for s in recipe["stages"]]
    done = [json.loads(path.read_text()) for path in run.glob("round[1-9]*/*/done.json")]  # a stopped run too
    effects, before = [], scores(run / "round0" / "base" / "eval.json")
    for stage in sorted(done, key=lambda s: (s["round"], order.index(s["stage"]))):
        folder = run / f"round{stage['round']}" / stage["stage"]
        if not (folder / "eval.json").is_file():
            continue
        after = scores(folder / "eval.json")
        change = {k: after[k] - before[k] for k in after if after[k] is not None and before[k] is not None}
        effects.append((verdicts_key(folder), f"{run.name}/{folder.parent.name}/{folder.name}", stage["stage"], change))
        if stage.get("promoted", True):
            before = after
    return effects


def main(runs: list[str]) -> None:
    seen, by_kind = set(), defaultdict(list)
    for run in map(Path, runs):
        for key, name, kind, change in stage_effects(run):
            if key in seen:
                continue
            seen.add(key)
            by_kind[kind].append(change)
            print(f"{name:40s} " + "  ".join(f"{k} {v:+.3f}" for k, v in change.items()))
    print()
    for kind, changes in by_kind.items():
        parts = []
        for metric in changes[0]:
            values = [c[metric] for c in changes if metric in c]
            down, up = sum(v < 0 for v in values), sum(v > 0 for v in values)
            parts.append(f"{metric} {sum(values) / len(values):+.3f} ({down} down, {up} up)")
        print(f"{kind:7s} {len(changes):2d} stages, mean change vs start: " + "; ".join(parts))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
