"""How each stage kind runs: its data builder (judged battles or prompts -> rows) and its trainer adapter
(rows -> checkpoint), read only by the pipeline. What a kind *is* (rank, shard, battles, launchable) is
the declarative table in stage_kinds.py, which the recipe schema reads; keeping the runners here keeps
the schema apart from the trainers. Builders and trainers import their libraries only when they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..stage_kinds import KINDS


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


# --- data builders ---------------------------------------------------------------------------------------

def _sft_rows(inputs: StageInputs) -> list:
    from ..flywheel import sft_rows

    return sft_rows(inputs.judged, inputs.target_name, inputs.filters)


def _dpo_rows(inputs: StageInputs) -> list:
    from ..flywheel import dpo_rows

    return dpo_rows(inputs.judged, inputs.filters)


def _kto_rows(inputs: StageInputs) -> list:
    from ..flywheel import kto_rows

    return kto_rows(inputs.judged, inputs.filters)


def _reward_rows(inputs: StageInputs) -> list:
    from ..flywheel import reward_rows

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
    from ..train.launch import train_launched

    launch = job.stage.train.launch
    return train_launched(kind, job.model_path, job.rows, out_dir or job.stage_dir, job.settings,
                          job.probe if probe is None else probe, processes=launch.processes,
                          config_file=launch.config_file, extra_args=launch.extra_args, timeout_s=launch.timeout_s,
                          env=launch.env)


def _train_with_trainer(job: TrainJob) -> tuple:
    """The one adapter for every kind whose trainer has the common signature (train.TRAINERS: SFT, DPO, KTO,
    GRPO on TRL): in the driver, or as an `accelerate launch` job when the recipe asks for one."""
    if job.stage.train.launch is not None:
        return _trained(_launched(job.stage.kind, job))
    from ..train import trainer

    return _trained(trainer(job.stage.kind)(job.model_path, job.rows, job.stage_dir, job.settings, job.probe))


def _train_distill(job: TrainJob) -> tuple:
    from ..models import parse_model_spec, resolve_local_path
    from ..train.distill import train_distill

    teacher = resolve_local_path(parse_model_spec(job.stage.teacher))
    return _trained(train_distill(job.model_path, teacher, job.rows, job.stage_dir, job.settings, job.probe))


def _train_reward_model(job: TrainJob):
    """rm_ppo's reward model: `stage.train` holds its settings, `train.launch` included (PPO is launched, or
    not, its own way)."""
    if job.stage.train.launch is not None:
        return _launched("reward", job, out_dir=job.folder.reward_model, probe=[])
    from ..train.reward import train_reward

    return train_reward(job.model_path, job.rows, job.folder.reward_model, job.settings, [])


def _train_rm_ppo(job: TrainJob) -> tuple:
    """A reward model on the battle pairs (unless the reward is the verifier alone), then PPO against it: ours,
    or OpenRLHF's (`ppo.engine`). `train.launch` launches the reward model's training only."""
    from ..train.ppo import PPOSettings, train_ppo

    settings = PPOSettings.from_recipe(job.stage.ppo, job.stage.train, seed=job.seed,
                                       probe_max_new_tokens=job.settings.probe_max_new_tokens)
    openrlhf = job.stage.ppo.engine == "openrlhf"  # the recipe schema allows it with reward rm only
    if openrlhf:  # what OpenRLHF would refuse after its start-up, refused before the reward model trains
        from ..train.openrlhf import check_settings, run_openrlhf

        check_settings(settings, job.stage.ppo.openrlhf)
    reward = job.stage.ppo.reward
    rm = _train_reward_model(job) if "rm" in reward else None
    reward_fn = None
    if "verifier" in reward:
        from ..judges.verifier import verifier_reward

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


# --- the runners ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageRunner:
    build: Callable[[StageInputs], list]   # rows for its trainer
    train: Callable[[TrainJob], tuple]     # -> (checkpoint, metrics)


RUNNERS: dict[str, StageRunner] = {
    "sft": StageRunner(_sft_rows, _train_with_trainer),
    "dpo": StageRunner(_dpo_rows, _train_with_trainer),
    "kto": StageRunner(_kto_rows, _train_with_trainer),
    "rm_ppo": StageRunner(_reward_rows, _train_rm_ppo),
    "grpo": StageRunner(_prompt_rows, _train_with_trainer),
    "distill": StageRunner(_prompt_rows, _train_distill),
}
if set(RUNNERS) != {k.name for k in KINDS.values() if k.trains}:  # a kind that trains needs a runner, and only it
    raise RuntimeError(f"stage kinds that train {sorted(k.name for k in KINDS.values() if k.trains)} but runners "
                       f"for {sorted(RUNNERS)}")
