"""Arena ratings: online Elo, Bradley–Terry maximum likelihood, bootstrap intervals, style control.

Pure functions of battle lists. A battle is three things: `model_a`, `model_b` and `winner`, where
`winner` is "model_a", "model_b" or "tie" ("tie (bothbad)" also counts as a tie), the convention of
LMSYS FastChat's arena logs (`fastchat/serve/monitor/elo_analysis.py`). Every function takes the three
as equal-length sequences; `battles_from_records` turns a list of dicts or tuples into them.

    encoding.py       battles in, integer codes out; the Elo scale, anchoring, best-first order
    elo.py            online Elo, battle by battle
    bradley_terry.py  the Bradley–Terry model: score matrix, Newton fit, identifiability warnings
    bootstrap.py      percentile-bootstrap intervals (resampled cells, batched Newton)
    style.py          Bradley–Terry with style control
    board.py          leaderboard rows, `leaderboard.csv` / `leaderboard.json`, the text table
    active.py         active sampling: each pair's outcome variance and sampling weight

Each module imports only modules above it in this list, never this package's `__init__`. Only numpy
is imported: pandas and scikit-learn stay out of this package.
"""

from __future__ import annotations

from .active import PairOutcomes, active_sampling_weight, pair_outcomes, unmet_pair_outcomes
from .board import LEADERBOARD_L2, format_leaderboard, leaderboard, write_leaderboard
from .bootstrap import bootstrap_ratings
from .bradley_terry import FASTCHAT_0_2_36_L2, compute_bradley_terry
from .elo import compute_online_elo
from .encoding import WINNER_CODES, RatingsWarning, battles_from_records
from .style import StyleControlledRatings, compute_bradley_terry_style, normalized_style_differences

__all__ = [
    "FASTCHAT_0_2_36_L2",
    "LEADERBOARD_L2",
    "PairOutcomes",
    "RatingsWarning",
    "StyleControlledRatings",
    "WINNER_CODES",
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
