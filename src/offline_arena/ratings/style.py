"""Style control (lmarena, "Does style matter? Disentangling style and substance in Chatbot Arena", 2024).

Bradley–Terry with per-battle style features (answer length, headers, ...) in the logit, so that a
model's rating is what it would score if both answers had the same style.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from .bradley_terry import (
    DEFAULT_L2,
    _check_solver_args,
    _component_basis,
    _connected_components,
    _score_matrix,
    _warn_if_not_identifiable,
)
from .encoding import A_SCORE, _apply_anchor, _check_scale, _encode, _EncodedBattles, _sorted_by_rating, _to_elo


class StyleControlledRatings(NamedTuple):
    """Ratings with style held fixed, and one coefficient per style feature.

    A coefficient is the change in log-odds of winning per standard deviation of that feature's
    normalised difference (see `normalized_style_differences`); positive means "more of it wins".
    """

    ratings: dict[str, float]
    style_coefficients: tuple[float, ...]


def normalized_style_differences(style_a: Sequence[Any], style_b: Sequence[Any]) -> np.ndarray:
    """Per-battle style features as lmarena / FastChat's `construct_style_matrices` builds them.

    For each feature (e.g. answer length in tokens, number of headers):

        d = (a − b) / (a + b + 1)       relative difference; the +1 keeps 0-vs-0 at 0
        z = (d − mean(d)) / std(d)      standardised over the battles

    `style_a`, `style_b`: shape (n,) for one feature or (n, k) for k features; returns (n, k).
    """
    a, b = np.asarray(style_a, dtype=float), np.asarray(style_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"style_a and style_b must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.ndim != 2:
        raise ValueError(f"style features must have shape (n,) or (n, k), got {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("style features must be finite numbers")
    diff = (a - b) / (a + b + 1.0)
    std = diff.std(axis=0)
    constant = np.flatnonzero(std == 0)
    if constant.size:
        raise ValueError(f"style feature {int(constant[0])} has the same normalised difference in every battle")
    return (diff - diff.mean(axis=0)) / std


def _style_features_for(battles: _EncodedBattles, style_a: Sequence[Any], style_b: Sequence[Any]) -> np.ndarray:
    style_z = normalized_style_differences(style_a, style_b)
    if len(style_z) != battles.num_battles:
        raise ValueError(f"style features have {len(style_z)} rows but there are {battles.num_battles} battles")
    return style_z


def _fit_bt_style(
    battles: _EncodedBattles, style_z: np.ndarray, weights: np.ndarray, l2: float, max_iter: int, tol: float,
    coef0: np.ndarray | None = None,
) -> np.ndarray:
    """[θ (one per model) | γ (one per style feature)] by Newton's method on the battles themselves.

    Style features are continuous, so battles cannot be pooled into a score matrix; this is weighted
    logistic regression with logit_r = θ_a − θ_b + z_r·γ and soft target y_r = score of model_a:

        minimise Σ_r w_r · [log(1 + e^logit_r) − y_r · logit_r] + (l2 / 2) · (‖θ‖² + ‖γ‖²)

    A tie is y = ½ with weight 1, which has exactly the gradient and Hessian of FastChat's two
    duplicate rows, one won by each side. The model part of each design row is +1 at a and −1 at b,
    so we never build that n × m matrix: every product with it is a bincount over a and b. That keeps
    the cost O(n·k) per step, free of BLAS (whose threads thrash on small machines for n × m matvecs).
    As in `_fit_bt_theta`, θ stays mean-zero per connected component.
    """
    m, k = battles.num_models, style_z.shape[1]
    a, b, target = battles.a, battles.b, A_SCORE[battles.outcome]
    present = weights > 0  # a bootstrap round leaves some battles out, and with them graph edges
    games = np.bincount(a[present] * m + b[present], minlength=m * m).reshape(m, m)
    model_basis = _component_basis(_connected_components(games), m)
    basis = np.hstack([model_basis, np.zeros((len(model_basis), k))])
    conditioning = basis.T @ basis + l2 * np.eye(m + k)

    def logits_of(coef: np.ndarray) -> np.ndarray:
        return coef[a] - coef[b] + np.einsum("nk,k->n", style_z, coef[m:])

    def objective(coef: np.ndarray, logits: np.ndarray) -> float:
        # −[y·log σ(x) + (1 − y)·log(1 − σ(x))] = log(1 + e^x) − y·x
        return float((weights * (np.logaddexp(0.0, logits) - target * logits)).sum() + 0.5 * l2 * (coef**2).sum())

    def per_model(values: np.ndarray) -> np.ndarray:  # Σ over battles of ±values at a / b
        return np.bincount(a, values, minlength=m) - np.bincount(b, values, minlength=m)

    coef = np.zeros(m + k) if coef0 is None else np.array(coef0, dtype=float)
    coef -= (coef @ basis.T) @ basis
    logits = logits_of(coef)
    current = objective(coef, logits)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-logits))
        residual, curvature = weights * (target - p), weights * p * (1.0 - p)
        gradient = -np.concatenate([per_model(residual), np.einsum("nk,n->k", style_z, residual)]) + l2 * coef
        pair = np.bincount(a * m + b, curvature, minlength=m * m).reshape(m, m)
        pair += pair.T
        weighted_z = curvature[:, None] * style_z
        hessian = conditioning.copy()
        hessian[:m, :m] += np.diag(pair.sum(axis=1)) - pair
        hessian[:m, m:] += np.stack([per_model(weighted_z[:, j]) for j in range(k)], axis=1)
        hessian[m:, :m] = hessian[:m, m:].T
        hessian[m:, m:] += np.einsum("nj,nk->jk", weighted_z, style_z)
        step = -np.linalg.solve(hessian, gradient)
        step -= (step @ basis.T) @ basis
        if np.abs(step).max() <= tol:  # below the objective's rounding error: take it and stop
            return coef + step
        size = 1.0
        while True:  # backtracking; the full Newton step is almost always accepted
            candidate = coef + size * step
            candidate_logits = logits_of(candidate)
            candidate_objective = objective(candidate, candidate_logits)
            if candidate_objective <= current + 1e-12 * abs(current) or size < 1e-12:
                break
            size *= 0.5
        coef, logits, current = candidate, candidate_logits, candidate_objective
        if np.abs(size * step).max() <= tol:
            break
    return coef


def compute_bradley_terry_style(
    model_a: Sequence[str],
    model_b: Sequence[str],
    winner: Sequence[str],
    style_a: Sequence[Any],
    style_b: Sequence[Any],
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: tuple[str, float] | None = None,
    l2: float = DEFAULT_L2,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> StyleControlledRatings:
    """Bradley–Terry with style control (lmarena 2024; FastChat `construct_style_matrices`/`fit_mle_elo`).

    With z the standardised style differences of a battle (`normalized_style_differences`):

        P(A beats B) = σ(θ_A − θ_B + γ · z)

    fitted by maximum likelihood, ties as half a win each (target ½). θ is what a model would score if
    both answers had the same style; γ says how much style itself sways the judge. Ratings are scaled
    and centred exactly as in `compute_bradley_terry`.
    """
    _check_scale(scale, base)
    _check_solver_args(l2, max_iter, tol)
    battles = _encode(model_a, model_b, winner)
    style_z = _style_features_for(battles, style_a, style_b)
    _warn_if_not_identifiable(battles.models, _score_matrix(battles))
    coef = _fit_bt_style(battles, style_z, np.ones(battles.num_battles), l2, max_iter, tol)
    m = battles.num_models
    ratings = _apply_anchor(_to_elo(coef[:m], scale, base, init), battles.models, anchor)
    return StyleControlledRatings(_sorted_by_rating(battles.models, ratings), tuple(float(c) for c in coef[m:]))


def _bootstrap_style_theta(
    battles: _EncodedBattles, style_z: np.ndarray, full_fit: np.ndarray, rounds: int, rng: np.random.Generator,
    l2: float, max_iter: int, tol: float,
) -> np.ndarray:
    """θ for `rounds` resamples: a resample is a multinomial count per battle, used as its weight."""
    n, m = battles.num_battles, battles.num_models
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=rounds).astype(float)
    # Warm start from the full-data fit, as in the Bradley–Terry bootstrap.
    return np.stack([_fit_bt_style(battles, style_z, counts[r], l2, max_iter, tol, full_fit)[:m] for r in range(rounds)])
