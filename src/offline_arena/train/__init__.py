"""Trainers, one small module each: sft, dpo, kto, reward, grpo on TRL; ppo of our own (TRL dropped it).
TRL, PEFT and transformers are imported only inside this package, and only when a stage runs."""

# The trainers with one signature, (model_path, rows, out_dir, settings, probe_messages) -> TrainResult,
# saving rank-aware through `common.run_guarded`: the ones a stage runs through the generic adapter
# (pipeline/stage_runners.py) and the ones a launched job may run (launch.py; a job file carries data, not Python
# callables, so GRPO runs with its default rewards, the verifier and the stop penalty, as its stage does).
# name -> (module, function), imported only when one runs.
TRAINERS = {
    "sft": ("offline_arena.train.sft", "train_sft"),
    "dpo": ("offline_arena.train.dpo", "train_dpo"),
    "kto": ("offline_arena.train.kto", "train_kto"),
    "reward": ("offline_arena.train.reward", "train_reward"),
    "grpo": ("offline_arena.train.grpo", "train_grpo"),
}


def trainer(name: str):
    """The trainer function `name` in TRAINERS (its module imported now)."""
    import importlib

    module, function = TRAINERS[name]
    return getattr(importlib.import_module(module), function)
