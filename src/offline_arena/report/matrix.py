"""Pairwise win rates from judged battles: a pure function, checked by hand-worked cases in the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass
class Cell:
    """Row model against column model: its wins, ties and losses; errors and unjudged battles excluded."""

    wins: int = 0
    ties: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def win_rate(self) -> float:
        """Ties count half, as in the ratings: (wins + ties / 2) / games."""
        return (self.wins + 0.5 * self.ties) / self.games if self.games else float("nan")


def win_matrix(battles: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], Cell]:
    """{(row, col): Cell} from (model_a, model_b, winner) triples, both orientations filled.

    Example: A beats B twice, and once they tie; then (A, B) = 2 W / 1 T / 0 L, win rate 2.5/3 = 0.83,
    and (B, A) = 0 W / 1 T / 2 L, win rate 0.5/3 = 0.17.
    """
    cells: dict[tuple[str, str], Cell] = {}
    for model_a, model_b, winner in battles:
        if winner not in ("model_a", "model_b", "tie") or model_a == model_b:
            continue
        forward = cells.setdefault((model_a, model_b), Cell())
        backward = cells.setdefault((model_b, model_a), Cell())
        if winner == "tie":
            forward.ties += 1
            backward.ties += 1
        elif winner == "model_a":
            forward.wins += 1
            backward.losses += 1
        else:
            forward.losses += 1
            backward.wins += 1
    return cells


def model_order(cells: dict[tuple[str, str], Cell], preferred: Sequence[str] = ()) -> list[str]:
    """The matrix's rows and columns: `preferred` first (e.g. leaderboard order), then the rest by name."""
    present = {m for pair in cells for m in pair}
    ordered = [m for m in dict.fromkeys(preferred) if m in present]
    return ordered + sorted(present - set(ordered))
