"""The battle encoding every ratings module shares: names and winners in, integer codes out.

Battles arrive as the three equal-length sequences `model_a`, `model_b`, `winner` (the package
docstring gives the convention); `_encode` validates them once and every fit then works on integer
model ids and outcome codes. Also here: the helpers that put log-strengths θ on the Elo scale (see
`bradley_terry`), shift them to an anchor and sort them best first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

# Outcome codes. Index into A_SCORE to get the score of model_a: win 1, tie ½, loss 0.
A_WINS, TIE, B_WINS = 0, 1, 2
A_SCORE = np.array([1.0, 0.5, 0.0])
WINNER_CODES: Mapping[str, int] = {"model_a": A_WINS, "tie": TIE, "tie (bothbad)": TIE, "model_b": B_WINS}


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
