"""Leaderboard: Bradley–Terry rows with bootstrap intervals, their files (CSV, JSON) and a text table.

Named `board`, not `leaderboard`, so that `offline_arena.ratings.leaderboard` stays the function.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .bootstrap import _bootstrap_bt_theta
from .bradley_terry import (
    FASTCHAT_0_2_36_L2,
    _check_solver_args,
    _fit_bt_point,
    _score_matrix,
    _warn_if_not_identifiable,
)
from .encoding import A_WINS, B_WINS, TIE, _apply_anchor, _check_scale, _encode, _EncodedBattles, _to_elo
from .style import _bootstrap_style_theta, _fit_bt_style, _style_features_for

# What leaderboards use by default: FastChat's shrinkage. With the near-zero DEFAULT_L2 a checkpoint that won
# none of its 48 battles is pushed thousands of points away (the likelihood keeps improving as it sinks), and
# its bootstrap interval with it; this penalty keeps it finite and comparable, as Chatbot Arena's board does.
# The maths functions keep DEFAULT_L2 so that their hand-worked cases stay maximum-likelihood estimates.
LEADERBOARD_L2 = FASTCHAT_0_2_36_L2

LEADERBOARD_COLUMNS = ("rank", "model", "rating", "lower", "upper", "battles", "wins", "ties", "losses")


def _win_tie_loss(battles: _EncodedBattles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = battles.num_models
    a_won, tied, b_won = (battles.outcome == code for code in (A_WINS, TIE, B_WINS))

    def per_model(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
        return np.bincount(battles.a[mask_a], minlength=m) + np.bincount(battles.b[mask_b], minlength=m)

    return per_model(a_won, b_won), per_model(tied, tied), per_model(b_won, a_won)


def leaderboard(
    model_a: Sequence[str],
    model_b: Sequence[str],
    winner: Sequence[str],
    rounds: int = 100,
    seed: int = 0,
    style: tuple[Sequence[Any], Sequence[Any]] | None = None,
    anchor: tuple[str, float] | None = None,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    l2: float = LEADERBOARD_L2,
) -> list[dict[str, Any]]:
    """Bradley–Terry leaderboard rows, best first, regularised like FastChat's (`LEADERBOARD_L2`).

    rating: the full-data maximum-likelihood rating (style-controlled if `style=(style_a, style_b)`);
    lower/upper: the 95% percentile-bootstrap interval over `rounds` resamples; battles/wins/ties/losses:
    raw counts. rank follows lmarena: 1 + the number of models whose lower bound is above this model's
    upper bound, so models whose intervals overlap share a rank.
    """
    _check_scale(scale, base)
    _check_solver_args(l2, max_iter=100, tol=1e-10)
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    battles = _encode(model_a, model_b, winner)
    rng = np.random.default_rng(seed)
    max_iter, tol, m = 100, 1e-10, battles.num_models
    if style is None:
        theta_point = _fit_bt_point(battles, None, l2, max_iter, tol)
        theta_rounds = _bootstrap_bt_theta(battles, rounds, rng, l2, max_iter, tol)
    else:
        style_z = _style_features_for(battles, *style)
        _warn_if_not_identifiable(battles.models, _score_matrix(battles))
        full_fit = _fit_bt_style(battles, style_z, np.ones(battles.num_battles), l2, max_iter, tol)
        theta_point = full_fit[:m]
        theta_rounds = _bootstrap_style_theta(battles, style_z, full_fit, rounds, rng, l2, max_iter, tol)
    ratings = _apply_anchor(_to_elo(theta_point, scale, base, init), battles.models, anchor)
    samples = _apply_anchor(_to_elo(theta_rounds, scale, base, init), battles.models, anchor)
    lower, upper = np.quantile(samples, [0.025, 0.975], axis=0)
    wins, ties, losses = _win_tie_loss(battles)
    rows = []
    for i in sorted(range(m), key=lambda i: (-ratings[i], battles.models[i])):
        rank = 1 + int((lower > upper[i]).sum())
        rows.append(
            {
                "rank": rank,
                "model": battles.models[i],
                "rating": float(ratings[i]),
                "lower": float(lower[i]),
                "upper": float(upper[i]),
                "battles": int(wins[i] + ties[i] + losses[i]),
                "wins": int(wins[i]),
                "ties": int(ties[i]),
                "losses": int(losses[i]),
            }
        )
    return rows


def write_leaderboard(rows: Sequence[Mapping[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write `leaderboard.csv` (ratings to 2 decimals, for people) and `leaderboard.json` (full
    precision, for programs) into `out_dir`, creating it if needed. Returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "leaderboard.csv", out / "leaderboard.json"
    columns = list(rows[0].keys()) if rows else list(LEADERBOARD_COLUMNS)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: f"{value:.2f}" if isinstance(value, float) else value for key, value in row.items()})
    json_path.write_text(json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return csv_path, json_path


def format_leaderboard(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain aligned text table: rank, model, rating, 95% interval as +up/−down, battles, W/T/L."""
    header = ("rank", "model", "rating", "95% CI", "battles", "wins", "ties", "losses")
    body = [
        (
            str(row["rank"]),
            str(row["model"]),
            f"{row['rating']:.1f}",
            f"+{row['upper'] - row['rating']:.1f}/-{row['rating'] - row['lower']:.1f}",
            str(row["battles"]),
            str(row["wins"]),
            str(row["ties"]),
            str(row["losses"]),
        )
        for row in rows
    ]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
    left_aligned = {1}  # the model name; numbers align right

    def render(line: Sequence[str]) -> str:
        cells = [cell.ljust(w) if c in left_aligned else cell.rjust(w) for c, (cell, w) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *(render(line) for line in body)])
