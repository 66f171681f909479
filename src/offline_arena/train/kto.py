"""Kahneman-Tversky Optimization (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic
Optimization", arXiv 2402.01306) on unpaired battle outcomes, with TRL's `KTOTrainer`.

Rows are TRL's conversational unpaired-preference format: `{"prompt": [messages], "completion": [assistant
message], "label": bool}` (winners True, losers False). KTO needs no pairs, so battles whose loser was
filtered out still teach something. The reference policy is made by TRL (`ref_model=None`).

TRL estimates KTO's reference point z_0 (Eq. 8's KL term) from mismatched (prompt, completion) pairs within a
batch, so `settings.batch_size` must be at least 2.

Several GPUs (or CPU processes): `train.launch` in a recipe runs `train_kto` on every rank through
`accelerate launch` (train/launch.py); rank 0 saves. The KL pairs are rotated within each rank's batch, so
they depend on `batch_size` per process, not only on the global batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .common import (TrainResult, TrainSettings, chat_turns, length_grouping, lora_config, run_guarded, seeded_policy,
                     trl_args)
from .guard import first_batches


def kto_dataset(rows: Sequence[dict]):
    from datasets import Dataset

    if not rows:
        raise ValueError("no KTO rows to train on")
    return Dataset.from_list([{"prompt": chat_turns(row["prompt"]), "completion": chat_turns(row["completion"]),
                               "label": bool(row["label"])} for row in rows])


def guard_example(trainer) -> list[tuple[list[int], list[bool], list[bool]]]:
    """The *desirable* sequences of the first batches of KTOTrainer's `DataCollatorForUnpairedPreference` (TRL
    1.16): its `completion_mask` marks the tokens whose log-probabilities enter the loss. A desirable one,
    because an undesirable completion's end-of-turn is pushed down, not learnt; the first row of a batch
    that has no desirable example."""
    examples = []
    for batch in first_batches(trainer):
        labels = batch["label"].tolist()
        rows = [i for i, good in enumerate(labels) if good] or [0]
        examples += [(batch["input_ids"][i].tolist(), (batch["completion_mask"][i] == 1).tolist(),
                      (batch["attention_mask"][i] == 1).tolist()) for i in rows]
    return examples


def train_kto(model_path: str | Path, rows: Sequence[dict], out_dir: str | Path, settings: TrainSettings,
              probe_messages: Sequence[Sequence[dict]] = ()) -> TrainResult:
    """KTO from `model_path` on labelled `rows`; `settings.extra` may set `beta`, `desirable_weight`, ..."""
    from trl import KTOConfig, KTOTrainer

    if settings.batch_size < 2:
        raise ValueError("KTO needs batch_size >= 2: its KL reference point is estimated within a batch")
    model, tokenizer = seeded_policy(model_path, settings)
    KTOTrainer, grouping = length_grouping(KTOTrainer, settings)
    config = KTOConfig(**{"max_length": settings.max_length, **trl_args(settings, out_dir), **grouping})
    trainer = KTOTrainer(model=model, ref_model=None, args=config, train_dataset=kto_dataset(rows),
                         processing_class=tokenizer, peft_config=lora_config(settings))
    return run_guarded("kto", trainer, model, tokenizer, guard_example, probe_messages, settings, out_dir)
