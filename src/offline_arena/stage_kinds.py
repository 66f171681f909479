"""The stage kinds, in one table: for each kind, where it may sit in a round, which prompt shard it takes,
whether it battles the opponents, how its training data is built from what it played, and which trainer
runs it. The recipe schema, the dry-run plan, the shard dealer and the pipeline all read this table.

Adding a kind is a row here, a data builder (flywheel/builders.py) and a trainer (train/); see
docs/architecture.md, "Adding a stage kind". This module imports nothing heavy: the recipe schema reads
it, and the builders and trainers import their libraries only when they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence


@dataclass
class StageInputs:
    """What a stage's data builder may use: its judged battles, the name the target fought under, the
    data rules, and the stage's prompts."""

    judged: Sequence                 # JudgedBattle records of the stage's battles
    target_name: str
    filters: object                  # flywheel.DataFilters
    prompts: Sequence                # the stage's Prompt shard


@dataclass
class TrainJob:
    """What a stage's trainer gets: the model it starts from, the rows, and where to save."""

    stage: object                    # config.Stage
    model_path: str
    rows: list
    prompts: Sequence                # the stage's prompts (PPO rolls out on them; the guard probes them)
    probe: list                      # probe conversations of the stop-token guard
    folder: object                   # run_folder.StageFolder: where the trainers write
    settings: object                 # train.common.TrainSettings
    seed: int

    @property
    def stage_dir(self) -> Path:
        return self.folder.path


@dataclass(frozen=True)
class StageKind:
    name: str
    rank: int | None                 # order in a round: 0 imitation, 1 preferences, 2 RL; None = anywhere
    prompt_slot: str | None          # the prompt shard it takes (the built-in pack's slot name); None: none
    battles: bool                    # battles the opponents on its shard (its data comes from verdicts)
    build: Callable[[StageInputs], list] | None   # rows for its trainer; None: it trains on nothing
    train: Callable[[TrainJob], tuple] | None     # -> (checkpoint, metrics); None: it trains nothing
    needs_rows: Callable[[object], bool] = lambda stage: True  # False: trains even without data rows
    launchable: bool = False         # its trainer (rm_ppo: its reward model's) may run as an `accelerate launch` job (train.launch)
    summary: str = ""

    @property
    def trains(self) -> bool:
        return self.train is not None


# --- data builders ---------------------------------------------------------------------------------------

def _sft_rows(inputs: StageInputs) -> list:
    from .flywheel import sft_rows

    return sft_rows(inputs.judged, inputs.target_name, inputs.filters)


def _dpo_rows(inputs: StageInputs) -> list:
    from .flywheel import dpo_rows

    return dpo_rows(inputs.judged, inputs.filters)


def _kto_rows(inputs: StageInputs) -> list:
    from .flywheel import kto_rows

    return kto_rows(inputs.judged, inputs.filters)


def _reward_rows(inputs: StageInputs) -> list:
    from .flywheel import reward_rows

    return reward_rows(inputs.judged, inputs.filters)


def _prompt_rows(inputs: StageInputs) -> list:
    """On-policy stages learn from the prompts themselves (and their checkable constraints)."""
    return [{"prompt": list(p.messages), "prompt_id": p.id, "constraints": p.meta.get("constraints", [])}
            for p in inputs.prompts]


# --- trainers --------------------------------------------------------------------------------------------

def _metrics_of(result) -> dict:
    metrics = {k: v for k, v in result.metrics.items() if not isinstance(v, (list, dict))}
    return {**metrics, "guard": result.guard.as_dict()}


def _trained(result) -> tuple:
    return result.checkpoint, _metrics_of(result)


def _launched(kind: str, job: TrainJob, out_dir=None, probe=None):
    """The stage's trainer as an `accelerate launch` job (train/launch.py) when the recipe asks for one."""
    from .train.launch import train_launched

    launch = job.stage.train.launch
    return train_launched(kind, job.model_path, job.rows, out_dir or job.stage_dir, job.settings,
                          job.probe if probe is None else probe, processes=launch.processes,
                          config_file=launch.config_file, extra_args=launch.extra_args, timeout_s=launch.timeout_s)


def _train_sft(job: TrainJob) -> tuple:
    if job.stage.train.launch is not None:
        return _trained(_launched("sft", job))
    from .train.sft import train_sft

    return _trained(train_sft(job.model_path, job.rows, job.stage_dir, job.settings, job.probe))


def _train_dpo(job: TrainJob) -> tuple:
    if job.stage.train.launch is not None:
        return _trained(_launched("dpo", job))
    from .train.dpo import train_dpo

    return _trained(train_dpo(job.model_path, job.rows, job.stage_dir, job.settings, job.probe))


def _train_kto(job: TrainJob) -> tuple:
    if job.stage.train.launch is not None:
        return _trained(_launched("kto", job))
    from .train.kto import train_kto

    return _trained(train_kto(job.model_path, job.rows, job.stage_dir, job.settings, job.probe))


def _train_grpo(job: TrainJob) -> tuple:
    if job.stage.train.launch is not None:
        return _trained(_launched("grpo", job))
    from .train.grpo import train_grpo

    return _trained(train_grpo(job.model_path, job.rows, job.stage_dir, job.settings, job.probe))


def _train_distill(job: TrainJob) -> tuple:
    from .models import parse_model_spec, resolve_local_path
    from .train.distill import train_distill

    teacher = resolve_local_path(parse_model_spec(job.stage.teacher))
    return _trained(train_distill(job.model_path, teacher, job.rows, job.stage_dir, job.settings, job.probe))


def _train_reward_model(job: TrainJob):
    """rm_ppo's reward model: `stage.train` holds its settings, `train.launch` included (PPO is launched, or
    not, its own way)."""
    if job.stage.train.launch is not None:
        return _launched("reward", job, out_dir=job.folder.reward_model, probe=[])
    from .train.reward import train_reward

    return train_reward(job.model_path, job.rows, job.folder.reward_model, job.settings, [])


def _train_rm_ppo(job: TrainJob) -> tuple:
    """A reward model on the battle pairs (unless the reward is the verifier alone), then PPO against it: ours,
    or OpenRLHF's (`ppo.engine`). `train.launch` launches the reward model's training only."""
    from .train.ppo import PPOSettings, train_ppo

    settings = PPOSettings.from_recipe(job.stage.ppo, job.stage.train, seed=job.seed,
                                       probe_max_new_tokens=job.settings.probe_max_new_tokens)
    openrlhf = job.stage.ppo.engine == "openrlhf"  # the recipe schema allows it with reward rm only
    if openrlhf:  # what OpenRLHF would refuse after its start-up, refused before the reward model trains
        from .train.openrlhf import check_settings, run_openrlhf

        check_settings(settings, job.stage.ppo.openrlhf)
    reward = job.stage.ppo.reward
    rm = _train_reward_model(job) if "rm" in reward else None
    reward_fn = None
    if "verifier" in reward:
        from .judges.verifier import verifier_reward

        reward_fn = verifier_reward(job.prompts)
    prompts = [list(p.messages) for p in job.prompts]
    if openrlhf:
        result = run_openrlhf(job.model_path, prompts, job.folder.ppo, settings, rm.checkpoint,
                              job.stage.ppo.openrlhf, probe_messages=job.probe)
    else:
        # Rollouts honour each prompt's length budget, never below the recipe's rollout limit.
        budgets = [max(settings.max_new_tokens, p.meta.get("max_new_tokens", 0)) for p in job.prompts]
        result = train_ppo(job.model_path, prompts, job.folder.ppo, settings, reward_fn=reward_fn,
                           reward_model_path=str(rm.checkpoint) if rm else None, probe_messages=job.probe,
                           budgets=budgets if set(budgets) - {settings.max_new_tokens} else None)
    return result.checkpoint, {**({"reward_model": _metrics_of(rm)} if rm else {}), **_metrics_of(result)}


# --- the table -------------------------------------------------------------------------------------------

# The order of the rows is the order a user's prompt file is dealt into shards (pipeline/shards.py): a new
# kind goes at the end, or every existing run's shards would change. `prompt_slot`s name the built-in pack's
# slots (prompts/verifiable.SHARD_SLOTS); distill takes the pack's "ppo" slot, which no other kind uses
# (rm_ppo's PPO rolls out on its "rm" shard).
KINDS: dict[str, StageKind] = {k.name: k for k in (
    StageKind("sft", 0, "sft", True, _sft_rows, _train_sft, launchable=True,
              summary="SFT on the battles the target lost (the winner's answer)"),
    StageKind("dpo", 1, "dpo", True, _dpo_rows, _train_dpo, launchable=True,
              summary="DPO on decisive (chosen, rejected) pairs"),
    StageKind("kto", 1, "kto", True, _kto_rows, _train_kto, launchable=True,
              summary="KTO on answers labelled good or bad"),
    StageKind("rm_ppo", 2, "rm", True, _reward_rows, _train_rm_ppo, launchable=True,  # its reward model
              # PPO against the verifier needs no battle pairs: its reward is checked, not learned.
              needs_rows=lambda stage: stage.ppo.reward != "verifier",
              summary="a reward model on the battle pairs, then PPO against it (or against the verifier)"),
    StageKind("grpo", 2, "grpo", False, _prompt_rows, _train_grpo, launchable=True,
              summary="GRPO on the stage's prompts with the verifier's reward"),
    StageKind("distill", 0, "ppo", False, _prompt_rows, _train_distill,
              summary="logit distillation from a teacher on the stage's prompts"),
    StageKind("merge", None, None, False, None, None, summary="merges checkpoints with mergekit; trains nothing"),
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
