"""Leaderboard snapshots: the ratings (with 95% bootstrap CIs) of every checkpoint and opponent as they
stood after each evaluation of the run.

A pipeline run writes one into each eval.json (the leaderboard after that checkpoint joined), which
gives the per-round view for free. A folder made with `arena battle` / `arena judge` has none; then
leaderboard.json, or failing that a fit on the judged battles, gives a single snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from .collect import RunFiles


@dataclass
class Snapshot:
    label: str          # e.g. "round 1 · after sft (r1-sft)"
    short: str          # x-axis label, e.g. "r1-sft"
    rows: list[dict]    # ratings.leaderboard rows: rank, model, rating, lower, upper, battles, wins, ties, losses


def leaderboard_snapshots(files: RunFiles, outcomes: list[tuple[str, str, str, str]], seed: int = 0) -> list[Snapshot]:
    snapshots = []
    for checkpoint in files.checkpoints:
        rows = checkpoint.eval.get("leaderboard")
        if rows:
            where = "round 0 · base" if checkpoint.round == 0 else f"round {checkpoint.round} · after {checkpoint.stage}"
            snapshots.append(Snapshot(f"{where} ({checkpoint.name})", checkpoint.name, rows))
    if snapshots:
        return snapshots
    if files.leaderboard_json:
        return [Snapshot("leaderboard.json", "latest", files.leaderboard_json)]
    decided = [o for o in outcomes if o[3] in ("model_a", "model_b", "tie")]
    if len({m for o in decided for m in o[1:3]}) < 2:
        return []
    from ..ratings import leaderboard

    rows = leaderboard([o[1] for o in decided], [o[2] for o in decided], [o[3] for o in decided], rounds=100, seed=seed)
    return [Snapshot("all judged battles", "all", rows)]
