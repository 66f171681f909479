"""Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", arXiv 2402.03300, section 4.1) with
TRL's `GRPOTrainer`, rewarded by our constraint verifier: the advantage of each of G sampled answers is its
reward minus the group mean (scaled by the group's std), so no value model and no reward model are needed
when the reward is checkable.

Rows are `{"prompt": [messages], ...extra columns}`. TRL 1.16 keeps extra columns
(`GRPOConfig.remove_unused_columns=False`) and passes each one to every reward function as a keyword list
aligned with `completions` (one entry per sampled answer). Prompts from the verifiable pack carry
`constraints` ([{"id", "params"}]); we store them as a JSON string because Arrow would unify the differently
shaped `params` dicts across rows into one struct, adding None-valued keys that change what a check sees.

Several GPUs (or CPU processes): `train.launch` in a recipe runs `train_grpo` on every rank through
`accelerate launch` (train/launch.py), with the default reward functions; rank 0 saves. TRL seeds each rank
differently (`set_seed(seed, device_specific=True)`), so N processes sample other answers than one process
would: a launched run is a different sample of the same algorithm, not a replay of an in-process one. Set
`use_vllm` and friends through `settings.extra` for fast generation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from .common import (TrainResult, TrainSettings, chat_turns, longest_budget, lora_config, run_guarded,
                     seeded_policy, trl_args)
from .guard import on_policy_guard_example

NUM_GENERATIONS = 4  # answers sampled per prompt (one GRPO group); `settings.extra` may set another


def _answer_text(completion) -> str:
    """TRL gives conversational completions as [{"role": "assistant", "content": ...}], plain ones as str."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def constraint_reward(completions, constraints, **kwargs) -> list[float | None]:
    """Share of the prompt's constraints the answer satisfies (strict IFEval checks). None (TRL: no
    reward from this function) for a prompt without constraints; combine with another reward function
    when a dataset mixes such prompts in."""
    from ..prompts.constraints import check_all

    rewards = []
    for completion, spec in zip(completions, constraints):
        spec = json.loads(spec) if isinstance(spec, str) else spec
        if not spec:
            rewards.append(None)
            continue
        verdicts = check_all(_answer_text(completion), spec)
        rewards.append(sum(verdicts) / len(verdicts))
    return rewards


def stop_penalty(stop_ids: Sequence[int], penalty: float = 1.0) -> Callable:
    """A GRPO reward function: -penalty for an answer that hit the completion limit without a stop token, 0
    for one that ended. TRL 1.16 passes `completion_ids` (the sampled ids, ending in a stop id when the answer
    ended) to every reward function; summed with the verifier's reward, the same text scores lower cut off
    than finished, so the policy learns to end its answers (RL must reward stopping)."""
    stops = {int(i) for i in stop_ids}

    def missing_end_of_turn(completions, completion_ids, **kwargs) -> list[float]:
        return [0.0 if ids and int(ids[-1]) in stops else -penalty for ids in completion_ids]

    return missing_end_of_turn


def grpo_dataset(rows: Sequence[dict]):
    from datasets import Dataset

    if not rows:
        raise ValueError("no GRPO prompts to train on")
    examples = []
    for row in rows:
        example = {**row, "prompt": chat_turns(row["prompt"])}
        if "constraints" in row and not isinstance(row["constraints"], str):
            example["constraints"] = json.dumps(row["constraints"] or [])
        examples.append(example)
    return Dataset.from_list(examples)


def guard_example(trainer) -> tuple[list[int], list[bool]]:
    """GRPO samples its answers: the end-of-turn token is trained exactly when it is a generation stop id
    (see `guard.on_policy_guard_example`)."""
    return on_policy_guard_example(trainer, "grpo stage")


def train_grpo(model_path: str | Path, rows: Sequence[dict], out_dir: str | Path, settings: TrainSettings,
               probe_messages: Sequence[Sequence[dict]] = (),
               reward_funcs: Sequence[Callable] | None = None, missing_eos_penalty: float | None = 1.0) -> TrainResult:
    """GRPO from `model_path` on prompt `rows`, rewarded by `reward_funcs` (default: `constraint_reward`).
    `settings.extra` may set `num_generations` (default 4), `max_completion_length` (default
    the longest of `settings.probe_max_new_tokens`), `beta`, `temperature`, ... `batch_size * grad_accum` must be a
    multiple of `num_generations`: each step's batch holds whole groups. `missing_eos_penalty` adds
    `stop_penalty` to the reward functions (None: off)."""
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = seeded_policy(model_path, settings)
    config = GRPOConfig(**{
        "num_generations": NUM_GENERATIONS,
        "max_completion_length": longest_budget(settings),
        **trl_args(settings, out_dir),
    })
    funcs = list(reward_funcs or [constraint_reward])
    if missing_eos_penalty is not None:
        from ..models.chat import stop_token_ids

        funcs.append(stop_penalty(stop_token_ids(tokenizer, model.generation_config), missing_eos_penalty))
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=config,
                          train_dataset=grpo_dataset(rows), processing_class=tokenizer,
                          peft_config=lora_config(settings))
    return run_guarded("grpo", trainer, model, tokenizer, guard_example, probe_messages, settings, out_dir)
