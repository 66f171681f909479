"""Battles -> training data, as in Arena Learning (arXiv 2407.10627, sec. 3.3):

- SFT: the battles the target *lost*, with the winning opponent's answer as the target text;
- DPO and reward model: (chosen = winner, rejected = loser) pairs from decisive battles;
- KTO: every answer of a decisive battle, labelled good (won) or bad (lost).

Rows come out in the formats TRL expects (conversational), deduplicated and length-filtered, and can be
exported as JSONL, Parquet or a `datasets` folder to train elsewhere.
"""

from .builders import DataFilters, dpo_rows, export_rows, kto_rows, reward_rows, sft_rows  # noqa: F401
