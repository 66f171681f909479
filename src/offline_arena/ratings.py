"""Arena ratings: online Elo, Bradley–Terry maximum likelihood, bootstrap intervals, style control.

Pure functions of battle lists. A battle is three things: `model_a`, `model_b` and `winner`, where
`winner` is "model_a", "model_b" or "tie" ("tie (bothbad)" also counts as a tie), the convention of
LMSYS FastChat's arena logs (`fastchat/serve/monitor/elo_analysis.py`). Every function takes the three
as equal-length sequences; `battles_from_records` turns a list of dicts or tuples into them.

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
A bootstrap resample of n battles is a multinomial draw of counts over the distinct
(model_a, model_b, outcome) cells, so we resample the cells instead of the battles and solve every
round from its own S, all rounds batched into a single `np.linalg.solve`.

Only numpy is imported: pandas and scikit-learn stay out of this module.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = [
    "FASTCHAT_0_2_36_L2",
    "PairOutcomes",
    "RatingsWarning",
    "StyleControlledRatings",
    "active_sampling_weight",
    "battles_from_records",
    "bootstrap_ratings",
    "compute_bradley_terry",
    "compute_bradley_terry_style",
    "compute_online_elo",
    "format_leaderboard",
    "leaderboard",
    "normalized_style_differences",
    "pair_outcomes",
    "unmet_pair_outcomes",
    "write_leaderboard",
]

# Outcome codes. Index into A_SCORE to get the score of model_a: win 1, tie ½, loss 0.
A_WINS, TIE, B_WINS = 0, 1, 2
A_SCORE = np.array([1.0, 0.5, 0.0])
WINNER_CODES: Mapping[str, int] = {"model_a": A_WINS, "tie": TIE, "tie (bothbad)": TIE, "model_b": B_WINS}

# The default L2 penalty on θ (natural-log strengths): (l2 / 2) · ‖θ‖². It does not move the estimates
# measurably (a rating fitted on four battles moves by about 1e-6 points), but it keeps them finite when
# a model wins or loses every battle and it pins down each group of a disconnected comparison graph.
DEFAULT_L2 = 1e-8

# fschat 0.2.36 fits sklearn's LogisticRegression(fit_intercept=False) with its default C = 1.0 on
# duplicated battles whose columns are ±ln(10). In θ units that objective is 2·NLL(θ) + ‖θ‖² / (2·ln²10),
# so it is our objective with l2 = 1 / (2·ln²10). Pass this value to reproduce that release exactly.
FASTCHAT_0_2_36_L2 = 1.0 / (2.0 * math.log(10.0) ** 2)

# What leaderboards use by default: FastChat's shrinkage. With the near-zero DEFAULT_L2 a checkpoint that won
# none of its 48 battles is pushed thousands of points away (the likelihood keeps improving as it sinks), and
# its bootstrap interval with it; this penalty keeps it finite and comparable, as Chatbot Arena's board does.
# The maths functions keep DEFAULT_L2 so that their hand-worked cases stay maximum-likelihood estimates.
LEADERBOARD_L2 = FASTCHAT_0_2_36_L2

# Memory cap for one batch of bootstrap rounds: rounds × m × m float64 values.
_MAX_BATCH_VALUES = 4_000_000


class RatingsWarning(UserWarning):
    """The data cannot pin every rating down: a disconnected comparison graph or an unbeaten model."""


# --------------------------------------------------------------------------------------------------
# Input: validate once, then work on integer codes.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EncodedBattles:
    models: tuple[str, ...]  # sorted model names; index = model id
    a: np.ndarray  # int64 model id of model_a, one per battle
    b: np.ndarray  # int64 model id of model_b
    outcome: np.ndarray  # int64 outcome code: A_WINS, TIE or B_WINS

    @property
    def num_models(self) -> int:
        return len(self.models)

    @property
    def num_battles(self) -> int:
        return len(self.a)


def battles_from_records(records: Iterable[Any]) -> tuple[list[str], list[str], list[str]]:
    """Split battle records into the `(model_a, model_b, winner)` lists that every function here takes.

    A record is a mapping with keys "model_a", "model_b" and "winner" (extra keys are ignored, so
    FastChat's battle JSON works as is), or a `(model_a, model_b, winner)` tuple.
    """
    model_a: list[str] = []
    model_b: list[str] = []
    winner: list[str] = []
    for row, record in enumerate(records):
        if isinstance(record, Mapping):
            missing = [key for key in ("model_a", "model_b", "winner") if key not in record]
            if missing:
                raise ValueError(f"battle record {row} lacks {', '.join(missing)}: {record!r}")
            a, b, w = record["model_a"], record["model_b"], record["winner"]
        else:
            try:
                a, b, w = record
            except (TypeError, ValueError):
                raise ValueError(
                    f"battle record {row} is neither a mapping nor a (model_a, model_b, winner) triple: {record!r}"
                ) from None
        model_a.append(a)
        model_b.append(b)
        winner.append(w)
    return model_a, model_b, winner


def _as_1d(values: Sequence[Any], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence, got an array of shape {array.shape}")
    return array


def _encode_winners(winner: np.ndarray) -> np.ndarray:
    # Map the few distinct values rather than every row, and name the first bad row if any.
    values, inverse = np.unique(winner.astype(str), return_inverse=True)
    codes_of_values = np.array([WINNER_CODES.get(value, -1) for value in values])
    outcome = codes_of_values[inverse]
    bad_rows = np.flatnonzero(outcome < 0)
    if bad_rows.size:
        row = int(bad_rows[0])
        raise ValueError(
            f"battle {row}: winner {winner[row]!r} is not one of {sorted(WINNER_CODES)} "
            f"({bad_rows.size} bad row(s) in all)"
        )
    return outcome.astype(np.int64)


def _encode(model_a: Sequence[Any], model_b: Sequence[Any], winner: Sequence[Any]) -> _EncodedBattles:
    a_names, b_names, winners = _as_1d(model_a, "model_a"), _as_1d(model_b, "model_b"), _as_1d(winner, "winner")
    if not (len(a_names) == len(b_names) == len(winners)):
        raise ValueError(
            f"model_a, model_b and winner must have equal lengths, got {len(a_names)}, {len(b_names)} and {len(winners)}"
        )
    if len(a_names) == 0:
        raise ValueError("no battles: model_a, model_b and winner are empty")
    names, codes = np.unique(np.concatenate([a_names, b_names]).astype(str), return_inverse=True)
    a, b = codes[: len(a_names)].astype(np.int64), codes[len(a_names) :].astype(np.int64)
    self_battles = np.flatnonzero(a == b)
    if self_battles.size:
        row = int(self_battles[0])
        raise ValueError(f"battle {row}: model_a and model_b are both {a_names[row]!r}; a model cannot battle itself")
    return _EncodedBattles(models=tuple(str(n) for n in names), a=a, b=b, outcome=_encode_winners(winners))


def _check_scale(scale: float, base: float) -> None:
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if not (base > 0 and base != 1):
        raise ValueError(f"base must be positive and not 1, got {base}")


def _to_elo(theta: np.ndarray, scale: float, base: float, init: float) -> np.ndarray:
    """rating = scale · log_base(e^θ) + init = scale · θ / ln(base) + init."""
    return scale * theta / math.log(base) + init


def _apply_anchor(ratings: np.ndarray, models: Sequence[str], anchor: tuple[str, float] | None) -> np.ndarray:
    """Shift all ratings (last axis = models) so that `anchor = (model, rating)` holds exactly."""
    if anchor is None:
        return ratings
    model, rating = anchor
    if model not in models:
        raise ValueError(f"anchor model {model!r} is not among the rated models {list(models)}")
    index = list(models).index(model)
    return ratings + (float(rating) - ratings[..., index : index + 1])


def _sorted_by_rating(models: Sequence[str], ratings: np.ndarray) -> dict[str, float]:
    order = sorted(range(len(models)), key=lambda i: (-ratings[i], models[i]))
    return {models[i]: float(ratings[i]) for i in order}


# --------------------------------------------------------------------------------------------------
# Online Elo (FastChat's compute_elo).
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Bradley–Terry maximum likelihood on the aggregated score matrix.
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Bootstrap.
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Style control (lmarena, "Does style matter? Disentangling style and substance in Chatbot Arena", 2024).
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Leaderboard.
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Active sampling (Chiang et al. 2024, "Chatbot Arena", arXiv 2403.04132, sec. 5).
# --------------------------------------------------------------------------------------------------

# An unmet pair is assumed as uncertain as a score in [0, 1] can be: variance 1/4 (a fair coin, no ties).
MAX_OUTCOME_VARIANCE = 0.25

# The prior counts as this many pseudo-battles of variance 1/4, both in a pair's variance estimate and in
# its battle count. One is enough to keep an unmet pair's weight finite and a pair whose first battles all
# went one way from being written off as certain.
ACTIVE_PRIOR_BATTLES = 1.0


class PairOutcomes(NamedTuple):
    """What the battles so far say about one unordered pair of models."""

    battles: int
    variance: float  # one battle's score variance (win 1, tie ½, loss 0), shrunk towards 1/4 by the prior


def _shrunk_variance(battles: float, empirical_variance: float, prior_battles: float) -> float:
    return (battles * empirical_variance + prior_battles * MAX_OUTCOME_VARIANCE) / (battles + prior_battles)


def unmet_pair_outcomes(prior_battles: float = ACTIVE_PRIOR_BATTLES) -> PairOutcomes:
    """The prior alone: a pair that has not met yet."""
    return PairOutcomes(0, _shrunk_variance(0, 0.0, prior_battles))


def pair_outcomes(
    model_a: Sequence[str], model_b: Sequence[str], winner: Sequence[str], prior_battles: float = ACTIVE_PRIOR_BATTLES
) -> dict[tuple[str, str], PairOutcomes]:
    """Battle count and outcome variance per unordered pair, keyed by the two names in sorted order.

    The variance is that of one battle's score for either side (it is the same for both: s ↦ 1 − s),
    the empirical one pulled towards 1/4 by `prior_battles` pseudo-battles. A pair that always ties
    has a small variance, which is right: its next battle will teach little. No battles, no pairs.
    """
    if not prior_battles > 0:
        raise ValueError(f"prior_battles must be positive (it keeps unmet pairs finite), got {prior_battles}")
    if len(model_a) == 0 and len(model_b) == 0 and len(winner) == 0:
        return {}
    battles = _encode(model_a, model_b, winner)
    m = battles.num_models
    low, high = np.minimum(battles.a, battles.b), np.maximum(battles.a, battles.b)
    score = A_SCORE[battles.outcome]
    score_of_low = np.where(battles.a == low, score, 1.0 - score)
    pair = low * m + high
    count = np.bincount(pair, minlength=m * m)
    total = np.bincount(pair, weights=score_of_low, minlength=m * m)
    total_of_squares = np.bincount(pair, weights=score_of_low**2, minlength=m * m)
    result = {}
    for cell in np.flatnonzero(count):
        n = int(count[cell])
        mean = total[cell] / n
        empirical = max(total_of_squares[cell] / n - mean**2, 0.0)  # max: rounding can dip below zero
        names = (battles.models[cell // m], battles.models[cell % m])
        result[names] = PairOutcomes(n, _shrunk_variance(n, empirical, prior_battles))
    return result


def active_sampling_weight(outcomes: PairOutcomes, prior_battles: float = ACTIVE_PRIOR_BATTLES) -> float:
    """How much one more battle would shrink the standard error of the pair's win rate:

        sqrt(Σ̂ / n) − sqrt(Σ̂ / (n + 1)),     n = battles + prior_battles

    Chatbot Arena samples pair a with probability proportional to this (Chiang et al. 2024, sec. 5,
    with n the pair's battle count). Counting the prior's pseudo-battles in n keeps an unmet
    pair finite; it still weighs the most, as the first factor of sqrt(Σ̂) · (1/√n − 1/√(n + 1)) is
    largest (Σ̂ ≤ 1/4 = the prior) and the second falls with n.
    """
    n = outcomes.battles + prior_battles
    return math.sqrt(outcomes.variance / n) - math.sqrt(outcomes.variance / (n + 1))
