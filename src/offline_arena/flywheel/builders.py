"""Data builders. Input: judged battles (`records.JudgedBattle`: prompt messages, model names, both
completions, winner, scores). Output: lists of dict rows in TRL's formats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..models.base import content_key
from ..records import JudgedBattle


@dataclass
class DataFilters:
    """Which answers may become training data."""

    min_chars: int = 1              # shorter answers are dropped (empty answers teach nothing)
    max_chars: int = 8000           # longer answers are dropped (likely rambling)
    require_stopped: bool = True    # an answer we train *towards* (SFT target, DPO chosen, KTO good) must have
                                    # ended by itself: imitating truncated text teaches runaways. A rejected
                                    # answer may be a runaway: pushing away from it is exactly right.
    min_margin: float | None = None  # DPO/RM/KTO: keep battles whose |score_a - score_b| >= this (if scored)
    require_passing: bool = True    # an SFT target must satisfy every checkable constraint of its prompt: a
                                    # judge's "better" answer that still fails one teaches the failure too
    sft_from_ties: bool = False     # SFT also on answers of tied battles that satisfy every constraint
                                    # (rejection sampling); off: only the target's lost battles (Arena Learning)
    sft_per_prompt: int = 1         # up to this many distinct answers a prompt (from several battles or sides)
    rehearsal: float = 0.0          # SFT rehearsal rows per lost-battle row: the target's own passing answers
                                    # (battles it won or tied), so fine-tuning on what it got wrong does not
                                    # overwrite what it got right (experience replay against forgetting)

    def keeps(self, completion, as_target: bool = True) -> bool:
        text = completion.text
        stopped_ok = completion.stopped or not self.require_stopped or not as_target
        return (self.min_chars <= len(text) <= self.max_chars) and stopped_ok

    def passes(self, completion, battle: JudgedBattle) -> bool:
        """Whether an answer may be an SFT target: it satisfies every checkable constraint of the prompt
        (prompts without constraints: always, the judge alone decides)."""
        constraints = (battle.context or {}).get("constraints")
        if not self.require_passing or not constraints:
            return True
        from ..prompts.constraints import check_all

        return all(check_all(completion.text, constraints))

    def decisive(self, battle: JudgedBattle) -> bool:
        if battle.winner not in ("model_a", "model_b"):
            return False
        if self.min_margin is None or battle.score_a is None or battle.score_b is None:
            return True
        return abs(battle.score_a - battle.score_b) >= self.min_margin


def _sides(battle: JudgedBattle) -> tuple[tuple[str, object], tuple[str, object]]:
    """((winner name, winner completion), (loser name, loser completion)) of a decisive battle."""
    loser = "model_b" if battle.winner == "model_a" else "model_a"
    return battle.side(battle.winner), battle.side(loser)


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def sft_rows(battles: Sequence[JudgedBattle], target: str, filters: DataFilters = DataFilters()) -> list[dict]:
    """Arena Learning's rule: one row per prompt the target lost, the conversation ending in the winning
    opponent's answer — if that answer ended by itself and satisfies every checkable constraint
    (`filters.require_passing`). With `filters.sft_from_ties`, a tied battle's answers that pass too
    (rejection sampling). Up to `filters.sft_per_prompt` distinct answers a prompt, highest judge score
    first (then the first seen)."""
    found: dict[str, list[tuple[float, int, dict]]] = {}
    for battle in battles:
        if target not in (battle.model_a, battle.model_b):
            continue
        if battle.winner in ("model_a", "model_b"):
            (winner, completion), _ = _sides(battle)
            score = battle.score_a if battle.winner == "model_a" else battle.score_b
            sides = [] if winner == target else [(winner, completion, score)]
        elif battle.winner == "tie" and filters.sft_from_ties:
            sides = [(battle.model_a, battle.completion_a, battle.score_a),
                     (battle.model_b, battle.completion_b, battle.score_b)]
        else:
            continue
        for name, completion, score in sides:
            if not (filters.keeps(completion) and filters.passes(completion, battle)):
                continue
            rows = found.setdefault(battle.prompt_id, [])
            if any(row["messages"][-1]["content"] == completion.text for _, _, row in rows):
                continue
            rows.append((score if score is not None else 0.0, -len(rows), {
                "messages": [*battle.messages, *_assistant(completion.text)],
                "prompt_id": battle.prompt_id, "source_model": name}))
    rows = [row for rows in found.values()
            for _, _, row in sorted(rows, key=lambda r: r[:2], reverse=True)[:filters.sft_per_prompt]]
    return rows + rehearsal_rows(battles, target, filters, exclude=set(found), count=round(filters.rehearsal * len(rows)))


def rehearsal_rows(battles: Sequence[JudgedBattle], target: str, filters: DataFilters, exclude: set[str],
                   count: int) -> list[dict]:
    """Up to `count` SFT rows of the target's own answers that already pass: from battles it won or tied,
    on prompts that gave no lost-battle row (`exclude`), one a prompt, taken in a fixed order of prompt ids
    (a hash, not the shard's order), marked `rehearsal: true`. Answers must end by themselves and satisfy
    every constraint, as any SFT target."""
    if count <= 0:
        return []
    candidates: dict[str, dict] = {}
    for battle in battles:
        if target not in (battle.model_a, battle.model_b) or battle.prompt_id in exclude or battle.winner == "error":
            continue
        own = battle.completion_a if battle.model_a == target else battle.completion_b
        won = battle.winner == "tie" or battle.side(battle.winner)[0] == target
        if won and filters.keeps(own) and filters.passes(own, battle) and battle.prompt_id not in candidates:
            candidates[battle.prompt_id] = {"messages": [*battle.messages, *_assistant(own.text)],
                                            "prompt_id": battle.prompt_id, "source_model": target, "rehearsal": True}
    order = sorted(candidates, key=lambda prompt_id: _digest(["rehearsal", prompt_id]))
    return [candidates[prompt_id] for prompt_id in order[:count]]


def dpo_rows(battles: Sequence[JudgedBattle], filters: DataFilters = DataFilters()) -> list[dict]:
    """(prompt, chosen, rejected) from every decisive battle; identical pairs once; pairs whose two
    answers are the same text are dropped (no preference to learn)."""
    rows, seen = [], set()
    for battle in battles:
        if not filters.decisive(battle):
            continue
        (winner, chosen), (loser, rejected) = _sides(battle)
        if not (filters.keeps(chosen) and filters.keeps(rejected, as_target=False)) or chosen.text == rejected.text:
            continue
        key = _digest([battle.messages, chosen.text, rejected.text])
        if key in seen:
            continue
        seen.add(key)
        # Whether each answer ended by itself travels with the pair: a reward model must see a runaway
        # rejected answer as the open turn it is, as PPO and the rm: judge will read it (train/reward.py).
        rows.append({"prompt": list(battle.messages), "chosen": _assistant(chosen.text),
                     "rejected": _assistant(rejected.text), "prompt_id": battle.prompt_id,
                     "chosen_model": winner, "rejected_model": loser,
                     "chosen_stopped": chosen.stopped, "rejected_stopped": rejected.stopped})
    return rows


def reward_rows(battles: Sequence[JudgedBattle], filters: DataFilters = DataFilters()) -> list[dict]:
    """The reward model learns from the same preference pairs as DPO (TRL's RewardTrainer format)."""
    return dpo_rows(battles, filters)


def kto_rows(battles: Sequence[JudgedBattle], filters: DataFilters = DataFilters()) -> list[dict]:
    """Unpaired (prompt, completion, label): winners True, losers False. An answer that won one battle
    and lost another gets no label (the judge disagrees with itself about it)."""
    labels: dict[str, set] = {}
    rows: dict[str, dict] = {}
    for battle in battles:
        if not filters.decisive(battle):
            continue
        for (name, completion), label in zip(_sides(battle), (True, False)):
            if not filters.keeps(completion, as_target=label):
                continue
            key = _digest([battle.messages, completion.text])
            labels.setdefault(key, set()).add(label)
            rows.setdefault(key, {"prompt": list(battle.messages), "completion": _assistant(completion.text),
                                  "prompt_id": battle.prompt_id, "model": name})
    return [{**rows[key], "label": next(iter(seen))} for key, seen in labels.items() if len(seen) == 1]


def export_rows(rows: Sequence[dict], path: str | Path) -> Path:
    """Write rows as `.jsonl`, `.parquet`, or (any other path) a `datasets` folder via save_to_disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(path)  # never a half-written file under the final name
        return path
    from datasets import Dataset

    dataset = Dataset.from_list(list(rows))
    if path.suffix == ".parquet":
        dataset.to_parquet(str(path))
    else:
        dataset.save_to_disk(str(path))
    return path


def _digest(obj) -> str:
    return content_key(obj)
