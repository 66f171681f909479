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


def open_rejected_turns(trainer_cls, settings: TrainSettings):
    """`trainer_cls`, or a subclass that leaves every rejected answer's turn open: its tokens from the
    end-of-turn on (`<|im_end|>` and the template's newline) are cut from `rejected_ids` once TRL has
    tokenized the pairs, before the reference log-probabilities are computed, so neither side ever scores them.

    Why: DPO lowers the log-probability of every scored token of the rejected answer. When that answer ended
    by itself, one of them is its end-of-turn, in a place where the model naturally stops; pushing it down
    teaches the model to stop less, whatever the pair was about. In the quickstart the chosen answer is the
    model's own answer repaired (a P.S., a closing quote or phrase added before it ends), so most rejected
    answers that end are exactly such natural endings, and DPO took held-out answers that end by themselves
    from 68 to 59 of 96 (seed 1) and 69 to 58 (seed 2) after SFT had raised them. A runaway rejected answer
    never ended at all: the chat template's end-of-turn after it is not something the model said. The chosen
    answer keeps its end-of-turn, which DPO (and the NLL term) push up."""
    if settings.rejected_end_of_turn:
        return trainer_cls

    class OpenRejectedTurns(trainer_cls):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            from ..models.chat import end_of_turn_token_id

            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            tokenizer = getattr(processing_class, "tokenizer", processing_class)
            eot = end_of_turn_token_id(tokenizer)

            def open_turn(example):
                ids = example["rejected_ids"]
                if eot in ids:
                    ids = ids[:len(ids) - 1 - ids[::-1].index(eot)]
                # An empty answer (the builders drop them) would leave no completion token for TRL to score.
                return {"rejected_ids": ids or example["rejected_ids"][:1]}

            return dataset.map(open_turn, desc=f"Leaving the {dataset_name} rejected turns open")

    OpenRejectedTurns.__name__ = f"OpenRejectedTurns{trainer_cls.__name__}"
    return OpenRejectedTurns


def train_dpo(model_path: str | Path, rows: Sequence[dict], out_dir: str | Path, settings: TrainSettings,
              probe_messages: Sequence[Sequence[dict]] = ()) -> TrainResult:
    """DPO from `model_path` on preference `rows`; `settings.extra` may set `beta`, `loss_type`, ..."""
    from trl import DPOConfig, DPOTrainer

    model, tokenizer = seeded_policy(model_path, settings)
    # TRL 1.16 has a single `max_length` for prompt + answer (no max_prompt_length any more); keep_end
    # truncation would cut the start of the prompt, keep_start (the default) cuts the answer's end, which
    # the stop-token guard notices on the rendered example.
    DPOTrainer, grouping = length_grouping(open_rejected_turns(DPOTrainer, settings), settings)
    config = DPOConfig(**{"max_length": settings.max_length, **trl_args(settings, out_dir), **grouping})
    trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=preference_dataset(rows),
                         processing_class=tokenizer, peft_config=lora_config(settings))
    return run_guarded("dpo", trainer, model, tokenizer, guard_example, probe_messages, settings, out_dir)
