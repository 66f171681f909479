"""How good a leaderboard is, measured as Arena-Hard measures a benchmark (Li, Chiang et al. 2024, "From
Crowdsourced Data to High-Quality Benchmarks", arXiv 2406.11939, sec. 3; the authors' blog of 2024-04-19 and
their benchmark_statistics notebook in lmarena/arena-hard-auto):

- **separability**: the share of all pairs of models whose 95% intervals do not overlap (intervals that only
  touch count as separated, as in the notebook);
- **agreement with confidence** against a reference ranking: over the pairs the *reference* separates, +1
  when ours separates them in the same order, -1 in the opposite order, 0 when our intervals overlap;
  the mean, from -1 to 1 (the blog's scale; the notebook's 0-to-1 figure is (1 + this) / 2). Pairs the
  reference cannot separate are left out;
- **rank correlations** of the point ratings: Spearman's rho (average ranks for ties) and Kendall's tau-b;
  and the plain share of pairs in the same order.

Only the models both boards rate are compared; the ones only one of them has are listed.
"""

from __future__ import annotations

import csv
import math
from itertools import combinations
from pathlib import Path
from typing import Mapping, Sequence


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


def separability(intervals: Mapping[str, tuple[float, float]]) -> tuple[int, int]:
    """(pairs whose intervals do not overlap, all pairs)."""
    pairs = list(combinations(sorted(intervals), 2))
    return sum(not overlap(intervals[a], intervals[b]) for a, b in pairs), len(pairs)


def agreement_with_confidence(ours: Mapping[str, tuple[float, float, float]],
                              reference: Mapping[str, tuple[float, float, float]]) -> tuple[float | None, int]:
    """(mean score over the pairs the reference separates, that number of pairs); models as
    {name: (rating, lower, upper)}, compared on the models both have."""
    shared = sorted(set(ours) & set(reference))
    scores = []
    for a, b in combinations(shared, 2):
        if overlap(reference[a][1:], reference[b][1:]):
            continue
        if overlap(ours[a][1:], ours[b][1:]):
            scores.append(0.0)
        else:
            same = (ours[a][0] > ours[b][0]) == (reference[a][0] > reference[b][0])
            scores.append(1.0 if same else -1.0)
    return (sum(scores) / len(scores) if scores else None), len(scores)


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's correlation of the ranks."""
    rx, ry = _ranks(x), _ranks(y)
    n = len(rx)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b: (concordant - discordant) / sqrt((pairs - ties in x) (pairs - ties in y))."""
    concordant = discordant = ties_x = ties_y = 0
    for i, j in combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            ties_x += 1
            ties_y += 1
        elif dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    pairs = len(x) * (len(x) - 1) // 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    return None if denominator == 0 else (concordant - discordant) / denominator


def read_board(path: str | Path) -> dict[str, tuple[float, float | None, float | None]]:
    """{model: (rating, lower, upper)} from a leaderboard CSV with `model` and `rating` columns (and
    `lower`/`upper` for intervals): ours, or a reference such as Chatbot Arena's exported as CSV."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such leaderboard file")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"model", "rating"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: a leaderboard CSV needs the columns model and rating (missing: {sorted(missing)})")
        board = {}
        for line, row in enumerate(reader, 2):
            try:
                rating = float(row["rating"])
                lower = float(row["lower"]) if row.get("lower") not in (None, "") else None
                upper = float(row["upper"]) if row.get("upper") not in (None, "") else None
            except ValueError as error:
                raise ValueError(f"{path}:{line}: {error}") from None
            board[row["model"]] = (rating, lower, upper)
    if len(board) < 2:
        raise ValueError(f"{path}: a leaderboard to compare needs at least two models")
    return board


def compare_boards(ours: Mapping[str, tuple], reference: Mapping[str, tuple]) -> dict:
    """Every measure above, for our board against a reference (both {model: (rating, lower, upper)})."""
    shared = sorted(set(ours) & set(reference))
    if len(shared) < 2:
        raise ValueError(f"the two leaderboards share {len(shared)} model(s); at least two are needed to compare")
    mine, theirs = [ours[m][0] for m in shared], [reference[m][0] for m in shared]
    same_order = sum((mine[i] > mine[j]) == (theirs[i] > theirs[j]) for i, j in combinations(range(len(shared)), 2))
    with_ci = all(None not in ours[m][1:] for m in shared)
    ref_ci = all(None not in reference[m][1:] for m in shared)
    separated, pairs = separability({m: ours[m][1:] for m in shared}) if with_ci else (None, None)
    agreement, counted = agreement_with_confidence({m: ours[m] for m in shared}, {m: reference[m] for m in shared}) \
        if with_ci and ref_ci else (None, 0)
    return {"models": shared, "only_ours": sorted(set(ours) - set(reference)),
            "only_reference": sorted(set(reference) - set(ours)),
            "spearman": spearman(mine, theirs), "kendall_tau_b": kendall_tau_b(mine, theirs),
            "same_order_pairs": [same_order, len(shared) * (len(shared) - 1) // 2],
            "separability": [separated, pairs], "agreement_with_confidence": agreement,
            "pairs_reference_separates": counted}


def format_comparison(result: dict) -> str:
    def number(value):
        return "n/a" if value is None else f"{value:.3f}"

    same, pairs = result["same_order_pairs"]
    separated, all_pairs = result["separability"]
    lines = [f"compared on {len(result['models'])} models both boards rate"
             + (f" (only ours: {', '.join(result['only_ours'])})" if result["only_ours"] else "")
             + (f" (only the reference: {', '.join(result['only_reference'])})" if result["only_reference"] else ""),
             f"  Spearman rho {number(result['spearman'])}, Kendall tau-b {number(result['kendall_tau_b'])}, "
             f"pairs in the same order {same}/{pairs}",
             "  separability (pairs whose 95% intervals do not overlap) "
             + (f"{separated}/{all_pairs} = {separated / all_pairs:.3f}" if all_pairs else "n/a (no intervals)"),
             "  agreement with confidence (-1..1, over the pairs the reference separates) "
             + (f"{number(result['agreement_with_confidence'])} on {result['pairs_reference_separates']} pairs"
                if result["agreement_with_confidence"] is not None else
                "n/a (needs intervals on both boards and a pair the reference separates)")]
    return "\n".join(lines)
