"""What a run folder says, read without touching it: the resolved recipe, every evaluated checkpoint
(round0/base, then round<r>/<stage> in the recipe's stage order), its held-out scores, leaderboard
snapshot, training curves and stage summary.

A partly finished run is the normal case, not an error: a stage without eval.json is simply absent from
the metrics (its folder, if it exists, is listed as in progress), and nothing here requires done.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..run_folder import RunFolder, StageFolder, read_json, stage_folder_name

# The curves worth plotting from a training metrics.json: TRL's per-log-step losses, and our PPO's
# per-step reward score, KL and losses (train/common.py and train/ppo.py write them).
CURVE_KEYS = ("loss_curve", "score_curve", "kl_curve")
PPO_ROW_KEYS = ("policy_loss", "value_loss")


@dataclass
class TrainingCurve:
    label: str              # e.g. "round1/rm_ppo ppo: score"
    values: list[float]


@dataclass
class Checkpoint:
    """A model the run evaluated: the base (round 0) or the output of one stage."""

    name: str
    round: int
    stage: str
    folder: str                     # relative to the run folder
    eval: dict                      # eval.json: heldout scores, leaderboard snapshot
    summary: dict | None = None     # done.json (None while the stage is not marked done)
    curves: list[TrainingCurve] = field(default_factory=list)


@dataclass
class RunFiles:
    run_dir: Path
    recipe: dict | None
    checkpoints: list[Checkpoint]
    in_progress: list[str]          # stage folders with no eval.json yet, e.g. ["round2/dpo"]
    done_stages: list[str]          # stage folders holding done.json
    planned_stages: list[str]       # every round<r>/<stage> the recipe plans
    leaderboard_json: list | None   # RUN/leaderboard.json (the latest full leaderboard), if any

    @property
    def name(self) -> str:
        return (self.recipe or {}).get("name") or self.run_dir.resolve().name

    @property
    def opponents(self) -> list[str]:
        return [o["name"] for o in (self.recipe or {}).get("opponents", [])]


def collect_run_files(run_dir: str | Path) -> RunFiles:
    from ..stage_kinds import STAGE_KINDS

    run = RunFolder(run_dir)
    run_dir = run.root
    recipe = read_json(run.recipe)
    recipe_stages = [s.get("kind") for s in (recipe or {}).get("stages", [])]
    stage_order = {kind: i for i, kind in enumerate(recipe_stages + [k for k in STAGE_KINDS if k not in recipe_stages])}

    checkpoints, in_progress, done_stages = [], [], []
    for folder in sorted(run.stage_folders(),
                         key=lambda f: (f.round, stage_order.get(f.kind, len(stage_order)), f.kind)):
        round_index, relative = folder.round, folder.name
        evaluation = read_json(folder.eval)
        summary = read_json(folder.done)
        if round_index > 0 and isinstance(summary, dict):
            done_stages.append(relative)
        if not isinstance(evaluation, dict):
            if not isinstance(summary, dict):  # done without eval.json: a stage that skipped itself (a merge)
                in_progress.append(relative)
            continue
        stage = "base" if round_index == 0 else folder.kind
        checkpoints.append(Checkpoint(name=evaluation.get("model_name") or relative, round=round_index, stage=stage,
                                      folder=relative, eval=evaluation,
                                      summary=summary if isinstance(summary, dict) else None,
                                      curves=training_curves(folder)))
    rounds = int((recipe or {}).get("rounds") or 0)
    stages = (recipe or {}).get("stages", [])
    planned = [stage_folder_name(r, s.get("kind")) for r in range(1, rounds + 1) for s in stages if not _skips(s, r)]
    board = read_json(run.leaderboard_json)
    return RunFiles(run_dir, recipe if isinstance(recipe, dict) else None, checkpoints, in_progress, done_stages, planned,
                    board if isinstance(board, list) else None)


def _skips(stage: dict, round_index: int) -> bool:
    """Whether a stage of the saved recipe.json skips `round_index` (config.Stage.for_round, on the saved
    dict: the report reads a run folder without validating its recipe)."""
    skip = bool(stage.get("skip", False))
    for first, change in sorted((int(k), v) for k, v in (stage.get("from_round") or {}).items()):
        if first <= round_index and isinstance(change, dict) and "skip" in change:
            skip = bool(change["skip"])
    return skip


def training_curves(folder: StageFolder) -> list[TrainingCurve]:
    curves = []
    for part, path in folder.metrics_files():
        metrics = read_json(path)
        if not isinstance(metrics, dict):
            continue
        prefix = f"{folder.name} {part}".strip()
        for key in CURVE_KEYS:
            values = _numbers(metrics.get(key))
            if values:
                curves.append(TrainingCurve(f"{prefix}: {key.removesuffix('_curve')}", values))
        rows = metrics.get("curve") if isinstance(metrics.get("curve"), list) else []
        for key in PPO_ROW_KEYS:
            values = _numbers([row.get(key) for row in rows if isinstance(row, dict)])
            if values:
                curves.append(TrainingCurve(f"{prefix}: {key}", values))
    return curves


def _numbers(values) -> list[float]:
    if not isinstance(values, list):
        return []
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
