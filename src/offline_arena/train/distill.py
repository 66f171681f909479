"""Logit distillation from a teacher that shares the student's tokenizer, with TRL's `DistillationTrainer`.

TRL 1.16's trainer is *on-policy* (Agarwal et al. 2024, "On-Policy Distillation of Language Models",
arXiv 2306.13649): for each prompt the student samples an answer, the teacher scores every token of it, and
the student is trained to match the teacher's full next-token distribution under a generalised
Jensen-Shannon divergence (`beta` in `settings.extra`: 0 forward KL, 0.5 JSD, 1 reverse KL, the default).
So rows are prompts only, `{"prompt": [messages]}`, and the teacher's answers are never needed — unlike the
SFT stage, which distils through the opponents' *text* and works with any opponent, even an API.

The distributions are compared id by id, hence the refusal of a teacher whose tokenizer maps any token to
another id (TRL itself only compares vocabulary sizes).

Multi-GPU: call `train_distill` from a script and run it with `accelerate launch script.py` (set `use_vllm`
and friends through `settings.extra` for fast student generation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .common import (TrainResult, TrainSettings, chat_turns, load_policy, longest_budget, lora_config, run_guarded,
                     seeded_policy, trl_args)
from .guard import on_policy_guard_example


class TokenizerMismatchError(ValueError):
    pass


def distill_dataset(rows: Sequence[dict]):
    """`{"prompt": [messages], ...}` rows -> a `datasets.Dataset` of `{"prompt": [messages]}`."""
    from datasets import Dataset

    examples = []
    for i, row in enumerate(rows):
        prompt = chat_turns(row["prompt"])
        if not prompt or prompt[-1]["role"] != "user":
            raise ValueError(f"distill row {i}: the prompt must end with a user message")
        examples.append({"prompt": prompt})
    if not examples:
        raise ValueError("no distillation prompts to train on")
    return Dataset.from_list(examples)


def check_same_vocabulary(student_tokenizer, teacher_tokenizer, student_model, teacher_model,
                          teacher_path: str | Path) -> None:
    from ..models.vocab import vocabulary_difference

    difference = vocabulary_difference(student_tokenizer, teacher_tokenizer)
    student_rows = student_model.config.get_text_config().vocab_size
    teacher_rows = teacher_model.config.get_text_config().vocab_size
    if difference is None and student_rows != teacher_rows:
        difference = f"the student's output layer has {student_rows} rows, the teacher's {teacher_rows}"
    if difference is not None:
        raise TokenizerMismatchError(
            f"teacher {teacher_path} does not share the student's tokenizer ({difference}). Logit distillation "
            "compares next-token distributions id by id; distil a different-tokenizer model through its answers "
            "instead (the SFT stage on the opponents' winning answers).")


def guard_example(trainer) -> tuple[list[int], list[bool]]:
    """The student samples its answers, so the end-of-turn token is trained exactly when it is a generation
    stop id (see `guard.on_policy_guard_example`)."""
    return on_policy_guard_example(trainer, "distill stage")


def train_distill(model_path: str | Path, teacher_path: str | Path, rows: Sequence[dict], out_dir: str | Path,
                  settings: TrainSettings, probe_messages: Sequence[Sequence[dict]] = ()) -> TrainResult:
    """Distil `teacher_path` into `model_path` on the prompts in `rows`; the checkpoint (LoRA merged) lands
    in `out_dir/checkpoint`. `settings.extra` may set `beta`, `temperature`, `max_completion_length`
    (default the longest of `settings.probe_max_new_tokens`), ..."""
    from trl import DistillationConfig, DistillationTrainer

    model, tokenizer = seeded_policy(model_path, settings)
    teacher, teacher_tokenizer = load_policy(teacher_path, for_training=False)
    check_same_vocabulary(tokenizer, teacher_tokenizer, model, teacher, teacher_path)
    teacher.eval()
    config = DistillationConfig(**{
        "max_completion_length": longest_budget(settings),
        **trl_args(settings, out_dir),
    })
    trainer = DistillationTrainer(model=model, teacher_model=teacher, args=config,
                                  train_dataset=distill_dataset(rows), processing_class=tokenizer,
                                  peft_config=lora_config(settings))
    return run_guarded("distill", trainer, model, tokenizer, guard_example, probe_messages, settings, out_dir)
