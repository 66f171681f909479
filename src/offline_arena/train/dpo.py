"""Direct Preference Optimization (Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model
is Secretly a Reward Model", arXiv 2305.18290) on battle outcomes, with TRL's `DPOTrainer`.

Rows are TRL's conversational preference format: `{"prompt": [messages], "chosen": [assistant message],
"rejected": [assistant message]}`. The frozen reference policy of Eq. 7 is made by TRL itself (`ref_model=None`:
a copy of the starting model, or the adapter-free base model under LoRA).

Several GPUs (or CPU processes): `train.launch` in a recipe runs `train_dpo` on every rank through
`accelerate launch` (train/launch.py); rank 0 saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .common import (TrainResult, TrainSettings, chat_turns, length_grouping, lora_config, run_guarded, seeded_policy,
                     trl_args)
from .guard import first_batches


def preference_dataset(rows: Sequence[dict]):
    """Preference rows -> a `datasets.Dataset` with only `prompt`, `chosen`, `rejected` (also used by the
    reward model)."""
    from datasets import Dataset

    if not rows:
        raise ValueError("no preference rows to train on")
    return Dataset.from_list([{"prompt": chat_turns(row["prompt"]), "chosen": chat_turns(row["chosen"]),
                               "rejected": chat_turns(row["rejected"])} for row in rows])


def guard_example(trainer) -> list[tuple[list[int], list[bool], list[bool]]]:
    """Every *chosen* sequence of the first batches as DPOTrainer's `DataCollatorForPreference` (TRL 1.16)
    renders it. The collator stacks chosen rows then rejected rows and returns `completion_mask`; the loss takes
    log-probabilities of the tokens where it is 1 (`labels = input_ids.masked_fill(completion_mask == 0,
    -100)`), so those are the trained positions. The chosen answer is the one whose end-of-turn the policy
    is pushed towards."""
    examples = []
    for batch in first_batches(trainer):
        chosen = len(batch["input_ids"]) // 2  # chosen rows first, then rejected
        examples += [(batch["input_ids"][i].tolist(), (batch["completion_mask"][i] == 1).tolist(),
                      (batch["attention_mask"][i] == 1).tolist()) for i in range(chosen)]
    return examples


def train_dpo(model_path: str | Path, rows: Sequence[dict], out_dir: str | Path, settings: TrainSettings,
              probe_messages: Sequence[Sequence[dict]] = ()) -> TrainResult:
    """DPO from `model_path` on preference `rows`; `settings.extra` may set `beta`, `loss_type`, ..."""
    from trl import DPOConfig, DPOTrainer

    model, tokenizer = seeded_policy(model_path, settings)
    # TRL 1.16 has a single `max_length` for prompt + answer (no max_prompt_length any more); keep_end
    # truncation would cut the start of the prompt, keep_start (the default) cuts the answer's end, which
    # the stop-token guard notices on the rendered example.
    DPOTrainer, grouping = length_grouping(DPOTrainer, settings)
    config = DPOConfig(**{"max_length": settings.max_length, **trl_args(settings, out_dir), **grouping})
    trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=preference_dataset(rows),
                         processing_class=tokenizer, peft_config=lora_config(settings))
    return run_guarded("dpo", trainer, model, tokenizer, guard_example, probe_messages, settings, out_dir)
