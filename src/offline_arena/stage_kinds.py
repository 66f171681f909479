"""The stage kinds, in one table of what each kind *is*: where it may sit in a round, which prompt shard
it takes, whether it battles the opponents, whether it trains and may run as a launched job. The recipe
schema, the dry-run plan, preflight, the shard dealer and the pipeline read it. How a kind *runs* (its data
builder and its trainer adapter) lives with the pipeline, the only reader of it (pipeline/stage_runners.py),
so the schema never reaches the trainers (which read the schema's defaults).

Adding a kind is a row here, a runner there, a data builder (flywheel/builders.py) and a trainer (train/);
see docs/architecture.md, "Adding a stage kind". This module imports nothing of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class StageKind:
    name: str
    rank: int | None                 # order in a round: 0 imitation, 1 preferences, 2 RL; None = anywhere
    prompt_slot: str | None          # the prompt shard it takes (the built-in pack's slot name); None: none
    battles: bool                    # battles the opponents on its shard (its data comes from verdicts)
    trains: bool = True              # False: it trains nothing (a merge)
    needs_rows: Callable[[object], bool] = lambda stage: True  # False: trains even without data rows
    launchable: bool = False         # its trainer (rm_ppo: its reward model's) may run as an `accelerate launch` job (train.launch)
    trl_config: str | None = None    # the TRL config class `train.extra` goes to (rm_ppo: its reward model's)
    summary: str = ""


# --- the table -------------------------------------------------------------------------------------------

# The order of the rows is the order a user's prompt file is dealt into shards (shards.py): a new
# kind goes at the end, or every existing run's shards would change. `prompt_slot`s name the built-in pack's
# slots (prompts/verifiable.SHARD_SLOTS); distill takes the pack's "ppo" slot, which no other kind uses
# (rm_ppo's PPO rolls out on its "rm" shard).
KINDS: dict[str, StageKind] = {k.name: k for k in (
    StageKind("sft", 0, "sft", True, launchable=True, trl_config="SFTConfig",
              summary="SFT on the battles the target lost (the winner's answer)"),
    StageKind("dpo", 1, "dpo", True, launchable=True, trl_config="DPOConfig",
              summary="DPO on decisive (chosen, rejected) pairs"),
    StageKind("kto", 1, "kto", True, launchable=True, trl_config="KTOConfig",
              summary="KTO on answers labelled good or bad"),
    StageKind("rm_ppo", 2, "rm", True, launchable=True, trl_config="RewardConfig",  # its reward model
              # PPO against the verifier needs no battle pairs: its reward is checked, not learned.
              needs_rows=lambda stage: stage.ppo.reward != "verifier",
              summary="a reward model on the battle pairs, then PPO against it (or against the verifier)"),
    StageKind("grpo", 2, "grpo", False, launchable=True, trl_config="GRPOConfig",
              summary="GRPO on the stage's prompts with the verifier's reward"),
    StageKind("distill", 0, "ppo", False, trl_config="DistillationConfig",
              summary="logit distillation from a teacher on the stage's prompts"),
    StageKind("merge", None, None, False, trains=False, summary="merges checkpoints with mergekit; trains nothing"),
)}

STAGE_KINDS = tuple(KINDS)


def stage_kind(name: str) -> StageKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown stage kind {name!r}; known: {', '.join(KINDS)}") from None


def order_rule() -> str:
    """The order of a round in words, from the kinds' ranks: 'sft/distill before dpo/kto before ...'."""
    ranks = sorted({k.rank for k in KINDS.values() if k.rank is not None})
    return " before ".join("/".join(k.name for k in KINDS.values() if k.rank == r) for r in ranks)
