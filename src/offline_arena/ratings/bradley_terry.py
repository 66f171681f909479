"""Bradley–Terry maximum likelihood on the aggregated score matrix.

The model behind the leaderboard is Bradley & Terry (1952), "Rank analysis of incomplete block designs:
I. The method of paired comparisons", Biometrika 39(3/4). Each model i has a strength e^θ_i and

    P(i beats j) = e^θ_i / (e^θ_i + e^θ_j) = σ(θ_i − θ_j),        σ(x) = 1 / (1 + e^−x).

Ratings are that log-strength on the Elo scale:

    rating_i = scale · log_base(e^θ_i) + init = scale · θ_i / ln(base) + init,

so with the defaults (scale 400, base 10) a 400-point gap means 10:1 odds, as in chess Elo.

Ties count as half a win for each side. FastChat gets the same likelihood by duplicating every battle
and turning a tie into one win for each side; we keep one copy and give each side a score of 0.5.

Speed comes from aggregation. The likelihood depends on the battles only through the pairwise score
matrix S (S[i, j] = wins of i over j, plus half the ties), so we build S once with `np.bincount` and
run Newton's method on an m × m problem, where FastChat runs logistic regression on an n × m design.
The bootstrap (`bootstrap.py`) solves many such problems at once, one per resample.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from .encoding import (
    A_SCORE,
    RatingsWarning,
    _apply_anchor,
    _check_scale,
    _encode,
    _EncodedBattles,
    _sorted_by_rating,
    _to_elo,
)

# The default L2 penalty on θ (natural-log strengths): (l2 / 2) · ‖θ‖². It does not move the estimates
# measurably (a rating fitted on four battles moves by about 1e-6 points), but it keeps them finite when
# a model wins or loses every battle and it pins down each group of a disconnected comparison graph.
DEFAULT_L2 = 1e-8

# fschat 0.2.36 fits sklearn's LogisticRegression(fit_intercept=False) with its default C = 1.0 on
# duplicated battles whose columns are ±ln(10). In θ units that objective is 2·NLL(θ) + ‖θ‖² / (2·ln²10),
# so it is our objective with l2 = 1 / (2·ln²10). Pass this value to reproduce that release exactly.
FASTCHAT_0_2_36_L2 = 1.0 / (2.0 * math.log(10.0) ** 2)

# Memory cap for one batch of bootstrap rounds: rounds × m × m float64 values.
_MAX_BATCH_VALUES = 4_000_000


def _score_matrix(battles: _EncodedBattles, weights: np.ndarray | None = None) -> np.ndarray:
    """S[i, j] = (weighted) wins of i over j plus half the ties between them."""
    m = battles.num_models
    w = np.ones(battles.num_battles) if weights is None else weights
    score_a = A_SCORE[battles.outcome] * w
    score_b = w - score_a
    flat = np.bincount(battles.a * m + battles.b, weights=score_a, minlength=m * m)
    flat += np.bincount(battles.b * m + battles.a, weights=score_b, minlength=m * m)
    return flat.reshape(m, m)


def _connected_components(games: np.ndarray) -> list[np.ndarray]:
    """Groups of models linked by a chain of battles (games[i, j] > 0 means i and j met)."""
    m = len(games)
    adjacent = (games + games.T) > 0
    label = np.full(m, -1)
    components = []
    for start in range(m):
        if label[start] >= 0:
            continue
        label[start] = len(components)
        frontier = [start]
        while frontier:
            neighbours = np.flatnonzero(adjacent[frontier].any(axis=0) & (label < 0))
            label[neighbours] = len(components)
            frontier = neighbours.tolist()
        components.append(np.flatnonzero(label == len(components)))
    return components


def _warn_if_not_identifiable(models: Sequence[str], scores: np.ndarray) -> None:
    """The MLE is finite and unique only if the comparison graph is strongly connected (Zermelo 1929;
    Ford 1957). Here we flag the two common failures; the L2 penalty keeps the numbers finite anyway."""
    games = scores + scores.T
    components = _connected_components(games)
    if len(components) > 1:
        groups = "; ".join(", ".join(models[i] for i in group) for group in components)
        warnings.warn(
            f"the battles split the models into {len(components)} groups that never met ({groups}); "
            "ratings are comparable only within a group (each group is centred separately)",
            RatingsWarning,
            stacklevel=3,
        )
    points, played = scores.sum(axis=1), games.sum(axis=1)
    unbeaten = [models[i] for i in range(len(models)) if played[i] > 0 and points[i] >= played[i]]
    winless = [models[i] for i in range(len(models)) if played[i] > 0 and points[i] <= 0]
    if unbeaten or winless:
        warnings.warn(
            f"models that never lost ({unbeaten}) or never won or tied ({winless}) have no finite "
            "maximum-likelihood rating; their ratings are held finite only by the l2 regularisation (FastChat's by default)",
            RatingsWarning,
            stacklevel=3,
        )


def _component_basis(components: list[np.ndarray], m: int) -> np.ndarray:
    """Rows u_c = indicator of component c / sqrt(size): the directions the likelihood cannot see."""
    basis = np.zeros((len(components), m))
    for row, members in enumerate(components):
        basis[row, members] = 1.0 / math.sqrt(len(members))
    return basis


def _centre(theta: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Remove each component's mean (θ ← θ − Σ_c u_c u_cᵀ θ)."""
    return theta - (theta @ basis.T) @ basis


def _bt_objective(theta: np.ndarray, scores: np.ndarray, l2: float) -> np.ndarray:
    """Penalised negative log-likelihood, batched over the leading axis:

        f(θ) = −Σ_{i≠j} S[i, j] · log σ(θ_i − θ_j) + (l2 / 2) · ‖θ‖²,   log σ(x) = −log(1 + e^−x).
    """
    diff = theta[:, :, None] - theta[:, None, :]
    return (scores * np.logaddexp(0.0, -diff)).sum(axis=(1, 2)) + 0.5 * l2 * (theta**2).sum(axis=1)


def _fit_bt_theta(
    scores: np.ndarray, basis: np.ndarray, l2: float, max_iter: int, tol: float, theta0: np.ndarray | None = None
) -> np.ndarray:
    """Newton's method with backtracking on a batch of score matrices (shape R × m × m) → θ (R × m).

    With G = S + Sᵀ (games played) and p_ij = σ(θ_i − θ_j):

        gradient  g_i = −Σ_j (S[i, j] − G[i, j] · p_ij) + l2 · θ_i
        Hessian   H   = diag(Σ_j V_ij) − V + l2 · I,        V_ij = G[i, j] · p_ij · (1 − p_ij)

    H is a weighted graph Laplacian plus l2·I: along a component's constant vector u_c its eigenvalue is
    only l2, and the gradient there is l2 · u_cᵀθ = 0 at the optimum (the likelihood cannot see a shift
    of a whole component). We therefore keep θ mean-zero per component and solve with H + Σ u_c u_cᵀ,
    which leaves every other direction unchanged but makes the system well conditioned. The log-
    likelihood is concave, so Newton converges quadratically from θ = 0; backtracking only guards
    against overshoot in near-separated data.
    """
    rounds, m, _ = scores.shape
    games = scores + scores.transpose(0, 2, 1)
    theta = np.zeros((rounds, m)) if theta0 is None else _centre(np.array(theta0, dtype=float), basis)
    conditioning = basis.T @ basis + l2 * np.eye(m)
    objective = _bt_objective(theta, scores, l2)
    active = np.ones(rounds, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th, sc, gm = theta[idx], scores[idx], games[idx]
        p = 1.0 / (1.0 + np.exp(-(th[:, :, None] - th[:, None, :])))
        gradient = -(sc - gm * p).sum(axis=2) + l2 * th
        curvature = gm * p * (1.0 - p)
        hessian = -curvature + conditioning
        hessian[:, np.arange(m), np.arange(m)] += curvature.sum(axis=2)
        step = _centre(-np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0], basis)
        converged = np.abs(step).max(axis=1) <= tol
        new_theta, new_objective, size = th + step, _bt_objective(th + step, sc, l2), np.ones(idx.size)
        # Backtrack the rounds whose objective went up (never happens in well-posed data). A step below
        # tol is taken as is: there the objective changes less than its own rounding error.
        for _ in range(50):
            worse = ~converged & (new_objective > objective[idx] + 1e-12 * np.abs(objective[idx]))
            if not worse.any():
                break
            size[worse] *= 0.5
            new_theta[worse] = th[worse] + size[worse, None] * step[worse]
            new_objective[worse] = _bt_objective(new_theta[worse], sc[worse], l2)
        theta[idx], objective[idx] = new_theta, new_objective
        active[idx] = ~converged & (np.abs(size[:, None] * step).max(axis=1) > tol)
    return theta


def _fit_bt_batched(
    scores: np.ndarray, basis: np.ndarray, l2: float, max_iter: int, tol: float, theta0: np.ndarray | None
) -> np.ndarray:
    """`_fit_bt_theta` in memory-bounded batches of rounds."""
    rounds, m, _ = scores.shape
    batch = max(1, _MAX_BATCH_VALUES // (m * m))
    start0 = None if theta0 is None else np.broadcast_to(theta0, (rounds, m))
    parts = [
        _fit_bt_theta(scores[s : s + batch], basis, l2, max_iter, tol, None if start0 is None else start0[s : s + batch])
        for s in range(0, rounds, batch)
    ]
    return np.concatenate(parts)


def _check_solver_args(l2: float, max_iter: int, tol: float) -> None:
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (it keeps unbeaten models finite), got {l2}")
    if max_iter < 1 or not tol > 0:
        raise ValueError(f"need max_iter >= 1 and tol > 0, got max_iter={max_iter}, tol={tol}")


def _fit_bt_point(
    battles: _EncodedBattles, weights: np.ndarray | None, l2: float, max_iter: int, tol: float
) -> np.ndarray:
    """θ̂ on all the battles, after warning about data that cannot pin every rating down."""
    scores = _score_matrix(battles, weights)
    _warn_if_not_identifiable(battles.models, scores)
    basis = _component_basis(_connected_components(scores + scores.T), battles.num_models)
    return _fit_bt_theta(scores[None], basis, l2, max_iter, tol)[0]


def compute_bradley_terry(
    model_a: Sequence[str],
    model_b: Sequence[str],
    winner: Sequence[str],
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: tuple[str, float] | None = None,
    weights: Sequence[float] | None = None,
    l2: float = DEFAULT_L2,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> dict[str, float]:
    """Bradley–Terry (1952) maximum-likelihood ratings, ties counted as half a win for each side.

    With S[i, j] = wins of i over j + ½ · ties between them (each battle times its weight, if given):

        log L(θ) = Σ_{i≠j} S[i, j] · log σ(θ_i − θ_j)
        θ̂ = argmax  log L(θ) − (l2 / 2) · ‖θ‖²
        rating_i = scale · θ̂_i / ln(base) + init

    Hand-worked: A beats B in 3 of 4 battles → p̂ = 3/4 = σ(θ_A − θ_B) → odds e^(θ_A − θ_B) = 3 →
    rating gap 400 · log10(3) ≈ 190.85. One win and two ties in three → score 2 of 3 → gap
    400 · log10(2) ≈ 120.41.

    Centring: shifting every θ by a constant leaves the likelihood unchanged, so the penalty picks the
    mean-zero solution and the ratings average exactly `init`. That is FastChat's convention:
    `compute_elo_mle_with_tie` fits LogisticRegression(fit_intercept=False) whose L2 term likewise
    forces Σθ = 0, then adds 1000 (before anchoring a reference model). `anchor=(model, rating)` shifts
    all ratings so that model gets that rating, as FastChat does with mixtral-8x7b-instruct-v0.1 = 1114.
    Pass `l2=FASTCHAT_0_2_36_L2` to reproduce fschat 0.2.36's C = 1.0 shrinkage exactly; the tiny
    default agrees with it to well under one point once there are a few thousand battles.

    Returns {model: rating}, highest first.
    """
    _check_scale(scale, base)
    _check_solver_args(l2, max_iter, tol)
    battles = _encode(model_a, model_b, winner)
    theta = _fit_bt_point(battles, _check_weights(weights, battles.num_battles), l2, max_iter, tol)
    ratings = _apply_anchor(_to_elo(theta, scale, base, init), battles.models, anchor)
    return _sorted_by_rating(battles.models, ratings)


def _check_weights(weights: Sequence[float] | None, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weights must have one value per battle ({n}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        row = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
        raise ValueError(f"battle {row}: weight {w[row]} is not a finite non-negative number")
    return w
