"""A reward model as judge: a sequence-classification model (one output) scores each answer in its
chat context; the higher score wins, scores within `tie_margin` tie."""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

from ..models.chat import reward_input_ids, scores_at_end_of_turn
from .base import Matchup, Verdict


def scoring_dtype(device: str) -> str:
    """The dtype a reward model reads in: the GPU's compute dtype (bf16 where it is native,
    models/dtype.py), float32 on CPU whatever its bf16 units: a reading, not training, so verdicts and
    rewards must not move with the machine, and it is a small share of a run's time."""
    from ..models.dtype import compute_dtype

    return compute_dtype(device) if device.startswith("cuda") else "float32"


class RewardModelJudge:
    """Also PPO's reward-model scorer (train/ppo.py): one reader of reward models, so a rollout is scored
    exactly as a battle answer is."""

    def __init__(self, model_path: str, tie_margin: float = 0.0, batch_size: int = 8, max_length: int = 1024,
                 device: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_path = str(model_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.dtype = scoring_dtype(self.device)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.model_path, dtype=getattr(torch, self.dtype)).to(self.device).eval()
        self.model.requires_grad_(False)
        if self.model.config.num_labels != 1:
            raise ValueError(f"{model_path}: a reward model needs one output (num_labels=1), "
                             f"this one has {self.model.config.num_labels}")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"  # positions as in training (Llama-style models count from the left)
        self.tie_margin, self.batch_size, self.max_length = tie_margin, batch_size, max_length
        self._fingerprint: str | None = None
        self._read: dict[bytes, float] = {}  # judge(): each distinct answer's score, by its conversation's hash

    @property
    def fingerprint(self) -> str:
        """Computed when first asked (it reads the weights' files): PPO's scorer never needs it."""
        if self._fingerprint is None:
            from ..models.fingerprint import keyed_by_dtype
            from ..models.hf import local_fingerprint

            # v3: reads where trained, right-padded; a bf16 read (GPUs) is keyed apart from a float32 one.
            self._fingerprint = keyed_by_dtype(f"rm:{local_fingerprint(self.model_path)}:v3", self.dtype)
        return self._fingerprint

    def input_ids(self, conversation: list[dict], stopped: bool = True) -> list[int]:
        """A finished answer with its turn closed by the template (cut at its end-of-turn token where the
        model was trained so, `models.chat.reward_input_ids`); a runaway (cut at the token limit) as an open
        turn, never closed as if it had ended. Too long: the start of the prompt is cut, never the end of
        the answer, which a judge must see."""
        ids = reward_input_ids(self.tokenizer, conversation, stopped, scores_at_end_of_turn(self.model.config))
        return ids[-self.max_length:]

    def scores(self, conversations: Sequence[list[dict]], stopped: Sequence[bool] | None = None) -> list[float]:
        import torch

        stopped = [True] * len(conversations) if stopped is None else list(stopped)
        ids = [self.input_ids(c, s) for c, s in zip(conversations, stopped)]
        out: list[float] = []
        for start in range(0, len(ids), self.batch_size):
            batch = self.tokenizer.pad({"input_ids": ids[start:start + self.batch_size]},
                                       return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out.extend(self.model(**batch).logits[:, 0].float().tolist())
        return out

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        # An answer's score depends on its own conversation only, never on the answer beside it: each distinct
        # one is read once per judge, so an audit's swapped pairs (judges/audit.py) and an answer met by
        # several opponents cost no second read.
        keys, unread = [], {}
        for m in matchups:
            for answer in (m.answer_a, m.answer_b):
                conversation = [*m.messages, {"role": "assistant", "content": answer.text}]
                key = hashlib.sha256(json.dumps([conversation, answer.stopped]).encode()).digest()
                keys.append(key)
                if key not in self._read and key not in unread:
                    unread[key] = (conversation, answer.stopped)
        if unread:
            conversations, stopped = zip(*unread.values())
            self._read.update(zip(unread, self.scores(conversations, stopped)))
        verdicts = []
        for i in range(len(matchups)):
            a, b = self._read[keys[2 * i]], self._read[keys[2 * i + 1]]
            winner = "tie" if abs(a - b) <= self.tie_margin else "model_a" if a > b else "model_b"
            verdicts.append(Verdict(winner, a, b, f"reward A {a:.3f}, B {b:.3f}"))
        return verdicts
