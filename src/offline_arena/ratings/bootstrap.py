"""Percentile-bootstrap intervals: resample the battles with replacement, re-rate each round.

A bootstrap resample of n battles is a multinomial draw of counts over the distinct
(model_a, model_b, outcome) cells, so we resample the cells instead of the battles and solve every
round from its own score matrix S (see `bradley_terry`), all rounds batched into a single
`np.linalg.solve`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .bradley_terry import (
    DEFAULT_L2,
    _check_solver_args,
    _component_basis,
    _connected_components,
    _fit_bt_batched,
    _fit_bt_theta,
    _score_matrix,
    _warn_if_not_identifiable,
)
from .elo import _online_elo_codes
from .encoding import A_SCORE, _apply_anchor, _check_scale, _encode, _EncodedBattles, _to_elo


def _bootstrap_bt_theta(
    battles: _EncodedBattles, rounds: int, rng: np.random.Generator, l2: float, max_iter: int, tol: float
) -> np.ndarray:
    """θ for `rounds` resamples of the battles (with replacement, same size), shape rounds × m.

    Drawing n battles with replacement and counting them per distinct (model_a, model_b, outcome) cell
    is the same as drawing the cell counts from Multinomial(n, cell_count / n), so we never touch the
    individual battles again. Each round's score matrix is then one bincount.
    """
    m, n = battles.num_models, battles.num_battles
    cell_ids, counts = np.unique((battles.a * m + battles.b) * 3 + battles.outcome, return_counts=True)
    pair, outcome = cell_ids // 3, cell_ids % 3
    a, b = pair // m, pair % m
    resampled = rng.multinomial(n, counts / n, size=rounds).astype(float)  # rounds × cells
    score_a = resampled * A_SCORE[outcome]
    offsets = (np.arange(rounds) * m * m)[:, None]
    flat = np.bincount((offsets + a * m + b).ravel(), weights=score_a.ravel(), minlength=rounds * m * m)
    flat += np.bincount((offsets + b * m + a).ravel(), weights=(resampled - score_a).ravel(), minlength=rounds * m * m)
    scores = flat.reshape(rounds, m, m)
    full_scores = _score_matrix(battles)
    basis = _component_basis(_connected_components(full_scores + full_scores.T), m)
    # Warm-start every round from the full-data fit: a resample moves θ only a little, so Newton needs
    # two or three steps instead of five or six.
    theta_full = _fit_bt_theta(full_scores[None], basis, l2, max_iter, tol)[0]
    return _fit_bt_batched(scores, basis, l2, max_iter, tol, theta_full)


def _bootstrap_online_elo(
    battles: _EncodedBattles, rounds: int, rng: np.random.Generator, k: float, scale: float, base: float, init: float
) -> np.ndarray:
    """Online Elo on `rounds` resamples, each in a random order (FastChat's `battles.sample(frac=1,
    replace=True)` also shuffles), shape rounds × m."""
    n, m = battles.num_battles, battles.num_models
    samples = np.empty((rounds, m))
    for r in range(rounds):
        idx = rng.integers(0, n, size=n)
        samples[r] = _online_elo_codes(battles.a[idx], battles.b[idx], battles.outcome[idx], m, k, scale, base, init)
    return samples


def _summarise(models: Sequence[str], samples: np.ndarray) -> dict[str, dict[str, float]]:
    """Median and the 2.5/97.5 percentiles (linear interpolation, as pandas' quantile in FastChat)."""
    lower, median, upper = np.quantile(samples, [0.025, 0.5, 0.975], axis=0)
    order = sorted(range(len(models)), key=lambda i: (-median[i], models[i]))
    return {
        models[i]: {"median": float(median[i]), "lower": float(lower[i]), "upper": float(upper[i])} for i in order
    }


def bootstrap_ratings(
    model_a: Sequence[str],
    model_b: Sequence[str],
    winner: Sequence[str],
    rounds: int = 100,
    seed: int = 0,
    method: str = "bt",
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: tuple[str, float] | None = None,
    k: float = 4.0,
    l2: float = DEFAULT_L2,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> dict[str, dict[str, float]]:
    """Percentile-bootstrap intervals: resample the battles with replacement `rounds` times, re-rate each.

    method "bt": Bradley–Terry as in `compute_bradley_terry` (resampling aggregated cells, see above).
    method "elo": online Elo as in `compute_online_elo`, each resample in a random order.

    Returns {model: {"median", "lower", "upper"}}, lower/upper being the 2.5th and 97.5th percentiles
    of the resampled ratings (a 95% interval), highest median first. The anchor, if any, is applied in
    every round, so the anchored model's interval is a single point.
    """
    _check_scale(scale, base)
    _check_solver_args(l2, max_iter, tol)
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    battles = _encode(model_a, model_b, winner)
    rng = np.random.default_rng(seed)
    if method == "bt":
        _warn_if_not_identifiable(battles.models, _score_matrix(battles))
        theta = _bootstrap_bt_theta(battles, rounds, rng, l2, max_iter, tol)
        samples = _to_elo(theta, scale, base, init)
    elif method == "elo":
        samples = _bootstrap_online_elo(battles, rounds, rng, k, scale, base, init)
    else:
        raise ValueError(f"method must be 'bt' or 'elo', got {method!r}")
    return _summarise(battles.models, _apply_anchor(samples, battles.models, anchor))
