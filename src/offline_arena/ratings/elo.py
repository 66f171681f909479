"""Online Elo (FastChat's compute_elo): sequential updates, battle by battle in the given order."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .encoding import A_SCORE, _check_scale, _encode, _sorted_by_rating


def _online_elo_codes(
    a: np.ndarray, b: np.ndarray, outcome: np.ndarray, num_models: int, k: float, scale: float, base: float, init: float
) -> list[float]:
    rating = [float(init)] * num_models
    for i, j, score_a in zip(a.tolist(), b.tolist(), A_SCORE[outcome].tolist()):
        # Two expressions, not 1 − e_a, so that we reproduce FastChat's floats bit for bit.
        expected_a = 1.0 / (1.0 + base ** ((rating[j] - rating[i]) / scale))
        expected_b = 1.0 / (1.0 + base ** ((rating[i] - rating[j]) / scale))
        rating[i] += k * (score_a - expected_a)
        rating[j] += k * (1.0 - score_a - expected_b)
    return rating


def compute_online_elo(
    model_a: Sequence[str],
    model_b: Sequence[str],
    winner: Sequence[str],
    k: float = 4.0,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
) -> dict[str, float]:
    """Sequential Elo updates, battle by battle in the given order (FastChat's `compute_elo`).

    Every model starts at `init`. For a battle between A and B, with S_A = 1, ½ or 0 for a win, tie or
    loss of A:

        E_A = 1 / (1 + base^((R_B − R_A) / scale))       (expected score of A; E_B = 1 − E_A)
        R_A ← R_A + k · (S_A − E_A)
        R_B ← R_B + k · ((1 − S_A) − E_B)

    Example: from 1000/1000 with k = 4, A wins: E_A = ½, so A → 1002 and B → 998.

    The result depends on battle order, which is why the leaderboard uses Bradley–Terry instead.
    Returns {model: rating}, highest first.
    """
    _check_scale(scale, base)
    battles = _encode(model_a, model_b, winner)
    ratings = _online_elo_codes(battles.a, battles.b, battles.outcome, battles.num_models, k, scale, base, init)
    return _sorted_by_rating(battles.models, np.array(ratings))
