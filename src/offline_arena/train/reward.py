"""A Bradley-Terry reward model on battle outcomes (Ouyang et al. 2022, "Training language models to follow
instructions with human feedback", arXiv 2203.02155, Eq. 1), with TRL's `RewardTrainer`: the loss is
-log sigmoid(r(x, y_chosen) - r(x, y_rejected)).

Rows are the same conversational preference rows as DPO. The model is an
`AutoModelForSequenceClassification` with one label, initialised from the causal LM folder (a fresh
scalar head on the LM's body); the checkpoint carries its tokenizer and `pad_token_id` in the config,
because the head reads the score at the last non-pad token.

Several GPUs (or CPU processes): `train.launch` in an rm_ppo recipe runs `train_reward` on every rank through
`accelerate launch` (train/launch.py); rank 0 saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .common import TrainResult, TrainSettings, lora_config, on_gpu, run_guarded, trl_args
from .dpo import preference_dataset
from .guard import first_batches


def load_reward_model(model_path: str | Path, lora: bool = False):
    """A one-label sequence classifier from a causal LM folder (or a reward checkpoint) and its tokenizer;
    float32 master weights unless LoRA trains adapters on a frozen base (as `common.load_policy`)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_path), num_labels=1, dtype=torch.bfloat16 if lora and on_gpu() else torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False
    return model, tokenizer


def guard_example(trainer) -> list[tuple[list[int], list[bool], list[bool]]]:
    """The chosen sequences of the first batches of RewardTrainer's `DataCollatorForPreference` (TRL 1.16: `input_ids`,
    `attention_mask`, chosen rows first). A reward model does not generate, so the question is whether it
    *sees* the end of the answer: the end-of-turn token must be inside the attended positions (a
    truncated answer, or a template that leaves it out, scores a different thing than the one judged)."""
    examples = []
    for batch in first_batches(trainer):
        chosen = len(batch["input_ids"]) // 2
        for i in range(chosen):
            attended = (batch["attention_mask"][i] == 1).tolist()
            examples.append((batch["input_ids"][i].tolist(), attended, attended))
    return examples


def train_reward(model_path: str | Path, rows: Sequence[dict], out_dir: str | Path, settings: TrainSettings,
                 probe_messages: Sequence[Sequence[dict]] = ()) -> TrainResult:
    """Train a reward model on preference `rows`. `probe_messages` is accepted for a uniform signature and
    ignored: a reward model has no runaway rate."""
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    set_seed(settings.seed)  # TRL seeds only when it loads the model itself; the new score head needs it
    model, tokenizer = load_reward_model(model_path, lora=settings.lora)
    # RewardTrainer drops (does not truncate) pairs longer than max_length.
    config = RewardConfig(**{"max_length": settings.max_length, **trl_args(settings, out_dir)})
    trainer = RewardTrainer(model=model, args=config, train_dataset=preference_dataset(rows),
                            processing_class=tokenizer, peft_config=lora_config(settings, task_type="SEQ_CLS"))
    return run_guarded("reward", trainer, model, tokenizer, guard_example, [], settings, out_dir)
