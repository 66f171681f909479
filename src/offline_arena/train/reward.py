"""A Bradley-Terry reward model on battle outcomes (Ouyang et al. 2022, "Training language models to follow
instructions with human feedback", arXiv 2203.02155, Eq. 1), with TRL's `RewardTrainer`: the loss is
-log sigmoid(r(x, y_chosen) - r(x, y_rejected)).

Rows are the same conversational preference rows as DPO. The model is an
`AutoModelForSequenceClassification` with one label, initialised from the causal LM folder (a fresh
scalar head on the LM's body); the checkpoint carries its tokenizer and `pad_token_id` in the config,
because the head reads the score at the last non-pad token.

Where the score is read: at the answer's end-of-turn token. Each answer is rendered by the chat template
and cut after its closing end-of-turn token (ChatML's trailing newline dropped), with a pad token other
than the end-of-turn token (`models.chat.reward_input_ids`, `pad_token_apart_from_end_of_turn`), and the
checkpoint's config says so (`models.chat.SCORE_AT_END_OF_TURN`), so our scorers (PPO's, the reward-model
judge) cut the same way. That is also where OpenRLHF reads it (the last token of a rollout is its stop
token), so one reward model serves both PPO engines. Trained on the full template instead, the head would
learn to score the newline, and OpenRLHF would read a position it was never trained at.

Several GPUs (or CPU processes): `train.launch` in an rm_ppo recipe runs `train_reward` on every rank through
`accelerate launch` (train/launch.py); rank 0 saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..models.chat import SCORE_AT_END_OF_TURN, pad_token_apart_from_end_of_turn, reward_input_ids
from .common import TrainResult, TrainSettings, chat_turns, length_grouping, lora_config, on_gpu, run_guarded, trl_args
from .guard import first_batches


# RewardConfig fields that would change the tokenizer after `reward_dataset` tokenized the rows: the data
# would then not be what the checkpoint's tokenizer and config say its scorers should read.
TOKENIZATION_FIXED_HERE = {"pad_token", "eos_token", "chat_template_path"}


def load_reward_model(model_path: str | Path, lora: bool = False):
    """A one-label sequence classifier from a causal LM folder (or a reward checkpoint) and its tokenizer;
    float32 master weights unless LoRA trains adapters on a frozen base (as `common.load_policy`)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    tokenizer.pad_token = pad_token_apart_from_end_of_turn(tokenizer)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_path), num_labels=1, dtype=torch.bfloat16 if lora and on_gpu() else torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    setattr(model.config, SCORE_AT_END_OF_TURN, True)
    model.config.use_cache = False
    return model, tokenizer


def reward_dataset(rows: Sequence[dict], tokenizer):
    """Preference rows as RewardTrainer's tokenized columns (`chosen_ids`, `rejected_ids`; TRL 1.16 skips its
    own tokenization when they are present): prompt + answer, cut after the answer's end-of-turn token. An
    answer that never ended (`chosen_stopped` / `rejected_stopped` false, as `flywheel.dpo_rows` records
    it) stays an open turn, exactly as PPO's scorer and the `rm:` judge read a runaway; rows without the
    flags (user files) are finished answers."""
    from datasets import Dataset

    if not rows:
        raise ValueError("no preference rows to train on")

    def ids(row, side):
        conversation = chat_turns(row["prompt"]) + chat_turns(row[side])
        return reward_input_ids(tokenizer, conversation, stopped=bool(row.get(f"{side}_stopped", True)),
                                end_at_end_of_turn=True)

    return Dataset.from_list([{"chosen_ids": ids(row, "chosen"), "rejected_ids": ids(row, "rejected")}
                              for row in rows])


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

    fixed_here = sorted(set(settings.extra) & TOKENIZATION_FIXED_HERE)
    if fixed_here:
        raise ValueError(f"train.extra {fixed_here}: the reward model's tokens are fixed here (read at the answer's "
                         "end-of-turn token, with a pad token apart from it); drop them")
    set_seed(settings.seed)  # TRL seeds only when it loads the model itself; the new score head needs it
    model, tokenizer = load_reward_model(model_path, lora=settings.lora)
    # RewardTrainer drops (does not truncate) pairs longer than max_length.
    RewardTrainer, grouping = length_grouping(RewardTrainer, settings)
    config = RewardConfig(**{"max_length": settings.max_length, **trl_args(settings, out_dir), **grouping})
    trainer = RewardTrainer(model=model, args=config, train_dataset=reward_dataset(rows, tokenizer),
                            processing_class=tokenizer, peft_config=lora_config(settings, task_type="SEQ_CLS"))
    return run_guarded("reward", trainer, model, tokenizer, guard_example, [], settings, out_dir)
