"""Active sampling (Chiang et al. 2024, "Chatbot Arena", arXiv 2403.04132, sec. 5).

What the battles so far say about each pair of models, and how much one more battle of a pair would
teach: the weight with which Chatbot Arena's schedule (`offline_arena.battles`) picks the next pair.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from .encoding import A_SCORE, _encode

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
