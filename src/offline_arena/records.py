"""The records every layer passes along: how to sample (`SamplingParams`), what a model answered
(`Completion`), a `Prompt` (an id, chat messages and what is known about it, e.g. its checkable
constraints and length budget), a `Battle` (a prompt, two contestants and their answers) and
a `JudgedBattle` (the same with one judge's verdict). `battles.run_battles` and the store make them; the
judges, the data builders, the ratings, the CLI and the report read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k truncation

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    """A generated answer. `stopped` is True when the model ended its turn by itself, False when it
    ran into the token limit (a *runaway*)."""

    text: str
    stopped: bool
    num_tokens: int
    meta: dict = field(default_factory=dict)


WINNERS = ("model_a", "model_b", "tie", "error")   # "error": the judge could not decide; never rated


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple
    meta: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Battle:
    id: str                    # hash of (tag, prompt id, model names, answer keys): see battles.battle_id
    tag: str                   # what the battle is for: "round1/sft", "eval", "arena", ...
    prompt_id: str
    messages: tuple            # the prompt, chat messages
    context: dict              # prompt metadata the judge may use (constraints, a reference answer)
    model_a: str               # display names
    model_b: str
    answer_a: str              # the answers' keys in the store
    answer_b: str
    completion_a: Completion   # the answers themselves
    completion_b: Completion

    def side(self, which: str) -> tuple[str, Completion]:
        """(model name, answer) of side "model_a" or "model_b"."""
        return (self.model_a, self.completion_a) if which == "model_a" else (self.model_b, self.completion_b)

    def judged(self, winner: str, score_a: float | None = None, score_b: float | None = None,
               explanation: str = "") -> "JudgedBattle":
        fields = {name: getattr(self, name) for name in Battle.__dataclass_fields__}
        return JudgedBattle(**fields, winner=winner, score_a=score_a, score_b=score_b, explanation=explanation)


@dataclass(frozen=True)
class JudgedBattle(Battle):
    winner: str = "error"      # one of WINNERS
    score_a: float | None = None
    score_b: float | None = None
    explanation: str = ""

    def __post_init__(self):
        if self.winner not in WINNERS:
            raise ValueError(f"battle {self.id}: winner must be one of {WINNERS}, got {self.winner!r}")

    @property
    def decided(self) -> bool:
        """A verdict the ratings count (a win or a tie, not a judge error)."""
        return self.winner != "error"

    def as_dict(self) -> dict:
        return asdict(self)
