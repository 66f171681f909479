"""Supervised fine-tuning on the opponents' winning answers (the SFT stage of Arena Learning, arXiv 2407.10627),
with TRL's `SFTTrainer`.

Only the answer is trained. Rows arrive as `{"messages": [..., {"role": "assistant", ...}]}`; we split them
into TRL's conversational prompt-completion format, which SFTTrainer tokenizes twice (prompt with the
generation prompt, prompt + completion) and turns into `labels` that are -100 on the prompt
(`completion_only_loss`). We do not use `assistant_only_loss`: it needs `{% generation %}` tags in the chat
template, which SmolLM2's (and most) templates lack.

Several GPUs (or CPU processes): `train.launch` in a recipe runs `train_sft` on every rank through
`accelerate launch` (train/launch.py); rank 0 saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .common import (TrainResult, TrainSettings, chat_turns, length_grouping, lora_config, run_guarded, seeded_policy,
                     trl_args)
from .guard import first_batches


def sft_dataset(rows: Sequence[dict]):
    """`{"messages": [...]}` rows -> a `datasets.Dataset` of `{"prompt": [...], "completion": [answer]}`."""
    from datasets import Dataset

    examples = []
    for i, row in enumerate(rows):
        messages = chat_turns(row["messages"])
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise ValueError(f"SFT row {i}: the conversation must end with an assistant message")
        examples.append({"prompt": messages[:-1], "completion": messages[-1:]})
    if not examples:
        raise ValueError("no SFT rows to train on")
    return Dataset.from_list(examples)


def guard_example(trainer) -> list[tuple[list[int], list[bool], list[bool]]]:
    """Every example of the first batches exactly as SFTTrainer's collator hands them to the model. In TRL
    1.16 the labels are built during dataset preparation (-100 outside the completion) and the collator
    (`DataCollatorForLanguageModeling`) pads them with -100, so "trained" means `labels != -100`."""
    return [(batch["input_ids"][i].tolist(), (batch["labels"][i] != -100).tolist(),
             (batch["attention_mask"][i] == 1).tolist())
            for batch in first_batches(trainer) for i in range(len(batch["input_ids"]))]


def balanced_steps(trainer_cls, settings: TrainSettings):
    """`trainer_cls` and the config arguments that draw each optimizer step's rows at random, as a plain
    sampler does, and cut them into micro-batches of similar length (transformers' `BatchRebalanceSampler`,
    `train_sampling_strategy="batch_rebalance"`; variable micro-batch sizes, cost-balanced), with the recipe's
    seed instead of the sampler's fixed 42.

    Why this is free for SFT: its loss is the sum over the trained tokens of a whole optimizer step divided by
    their number (transformers' `num_items_in_batch`, across gradient-accumulation micro-batches and ranks), so
    which of a step's rows share a micro-batch changes only the padding, not the gradient. With
    `grad_accum: 2` and 4 rows a micro-batch, the quickstart's 64 SFT rows (one seed-0 run's) are padded to
    30.1K tokens over their two epochs instead of 35.6K (24.1K real; mean over 50 shuffles; `python
    bench/length_grouping.py RUN_DIR --weights-only`). Not for DPO:
    its NLL term is averaged over a micro-batch's tokens."""

    class BalancedSteps(trainer_cls):
        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            sampler.seed = self.args.seed
            return sampler

    BalancedSteps.__name__ = f"BalancedSteps{trainer_cls.__name__}"
    return BalancedSteps, {"train_sampling_strategy": "batch_rebalance"}


def train_sft(model_path: str | Path, rows: Sequence[dict], out_dir: str | Path, settings: TrainSettings,
              probe_messages: Sequence[Sequence[dict]] = (), data_collator=None) -> TrainResult:
    """Fine-tune `model_path` on `rows`; the checkpoint (LoRA merged) lands in `out_dir/checkpoint`.

    `data_collator` replaces TRL's default; the stop-token guard checks whichever collator is used."""
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = seeded_policy(model_path, settings)
    grouped = length_grouping if settings.group_by_length else balanced_steps
    SFTTrainer, grouping = grouped(SFTTrainer, settings)
    config = SFTConfig(**{
        "max_length": settings.max_length,
        "completion_only_loss": True,
        "packing": False,  # packing would let one answer's loss see another's context
        **trl_args(settings, out_dir), **grouping,
    })
    trainer = SFTTrainer(model=model, args=config, train_dataset=sft_dataset(rows), processing_class=tokenizer,
                         data_collator=data_collator, peft_config=lora_config(settings))
    return run_guarded("sft", trainer, model, tokenizer, guard_example, probe_messages, settings, out_dir)
