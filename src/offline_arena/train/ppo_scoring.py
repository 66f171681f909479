"""PPO's scores: a Python reward function, a reward model, or both added up.

Scores are read per rollout with whether it stopped: a reward model reads a finished rollout with its turn
closed, where it was trained to be read, and one cut at the token limit as an open turn (judges/reward_model.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

Messages = Sequence[dict]
RewardFn = Callable[[Messages, str], float]


class CallableScorer:
    def __init__(self, reward_fn: RewardFn):
        self.reward_fn = reward_fn

    def __call__(self, prompts: list[list[dict]], texts: list[str], stopped: list[bool]) -> list[float]:
        scores = [float(self.reward_fn(p, t)) for p, t in zip(prompts, texts)]
        bad = [s for s in scores if not math.isfinite(s)]
        if bad:
            raise ValueError(f"reward_fn returned non-finite scores: {bad[:5]}")
        return scores


class RewardModelScorer:
    """A sequence-classification reward model (num_labels=1) read as the `rm:` judge reads it
    (judges/reward_model.py): a finished rollout with its turn closed where the model was trained to be
    read, a rollout cut at the token limit as an open turn, never as if it had ended."""

    def __init__(self, path: str | Path, device, batch_size: int):
        from ..judges.reward_model import RewardModelJudge

        self.reader = RewardModelJudge(str(path), batch_size=batch_size, device=str(device))

    def __call__(self, prompts: list[list[dict]], texts: list[str], stopped: list[bool]) -> list[float]:
        return self.reader.scores([[*p, {"role": "assistant", "content": t}] for p, t in zip(prompts, texts)], stopped)


class CombinedScorer:
    """The reward model's score plus the reward function's, when both are given."""

    def __init__(self, reward_fn: RewardFn | None, reward_model_path: str | Path | None, device, batch_size: int):
        self.parts = ([RewardModelScorer(reward_model_path, device, batch_size)] if reward_model_path else []) + \
                     ([CallableScorer(reward_fn)] if reward_fn is not None else [])

    def __call__(self, prompts: list[list[dict]], texts: list[str], stopped: list[bool]) -> list[float]:
        return [sum(parts) for parts in zip(*(part(prompts, texts, stopped) for part in self.parts))]
