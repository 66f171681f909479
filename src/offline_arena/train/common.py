"""What every trainer shares: settings, loading the policy, TRL arguments that work on CPU and GPU,
LoRA, saving a checkpoint the next stage (or any user) can load, and the guarded training run."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

from .guard import GuardReport, assert_examples_end_trained, check_runaway, runaway_rate


def recipe_default(schema, name: str):
    """The default a recipe gives `name`: trainer settings take their defaults from the recipe schema
    (config.py), so a knob has one default whether a stage sets it from a recipe or a script does."""
    return schema.model_fields[name].get_default(call_default_factory=True)


def train_default(name: str):
    from ..config import Train

    return recipe_default(Train, name)


@dataclass
class TrainSettings:
    """Knobs shared by every trainer. Those a recipe sets (`config.Train`) default to the recipe's
    defaults, which suit the 135M builtin model on 2 CPU cores; the rest are trainer details."""

    learning_rate: float = train_default("learning_rate")      # peak learning rate
    epochs: float = train_default("epochs")                    # passes over the stage's data
    max_steps: int = train_default("max_steps")                # > 0 caps optimizer steps (overrides epochs)
    batch_size: int = train_default("batch_size")              # examples per device per step
    grad_accum: int = train_default("grad_accum")              # gradient accumulation steps
    max_length: int = train_default("max_length")              # tokens per example; longer ones are truncated
    warmup_ratio: float = 0.0          # share of steps spent warming up the learning rate
    lora: bool = train_default("lora")                         # LoRA adapters instead of all weights (merged when saved)
    lora_r: int = train_default("lora_r")                      # LoRA rank
    lora_alpha: int = 32               # LoRA scaling
    lora_dropout: float = 0.05         # LoRA dropout
    seed: int = 0                      # data order and initialisation
    logging_steps: int = 1             # log the loss every N steps
    gradient_checkpointing: bool = train_default("gradient_checkpointing")  # trade compute for memory
    probe_prompts: int = train_default("probe_prompts")        # runaway-rate probe size (0: no after-check)
    probe_max_new_tokens: int = 64     # token limit of a probe generation
    runaway_tolerance: float = train_default("runaway_tolerance")  # allowed rise of the runaway rate
    extra: dict = field(default_factory=dict)  # passed through to the TRL config (e.g. beta for DPO)

    @classmethod
    def from_recipe(cls, train, **fixed) -> "TrainSettings":
        """Settings from a recipe's `config.Train` (every field it shares with these), plus `fixed` ones
        the recipe sets elsewhere (the seed, the probes' token limit)."""
        shared = {f.name for f in fields(cls)} & set(type(train).model_fields)
        return cls(**{name: getattr(train, name) for name in shared}, **fixed)


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict
    guard: GuardReport


def chat_turns(messages: Sequence[dict]) -> list[dict]:
    """Only `role` and `content` of each message. Arrow unifies the dict keys across rows, so a stray key
    in one row (a `name`, a judge note) would appear as None in every other row's messages and reach the
    chat template."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def load_policy(model_path: str | Path, for_training: bool = True, lora: bool = False):
    """Model and tokenizer from a folder or Hub id. Weights an optimiser updates are float32 (master
    weights: an Adam step of 1e-6 on a bf16 weight of ~1e-2 rounds away), and compute runs under bf16
    autocast where bf16 is fast (`trl_args`, PPO's step). The frozen base under LoRA adapters (which PEFT
    keeps in float32) stays in the dtype it is stored in: it is merged and saved, and loading a float32
    checkpoint in bf16 would round every weight, not only what the adapters changed. A frozen model that is
    never saved (a teacher) is stored in the compute dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models.dtype import compute_dtype

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not for_training:
        dtype = getattr(torch, compute_dtype("cuda" if on_gpu() else "cpu"))
    else:
        dtype = "auto" if lora else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype)
    if for_training:
        model.config.use_cache = False
    return model, tokenizer


def trl_args(settings: TrainSettings, out_dir: str | Path) -> dict:
    """Keyword arguments every TRL config accepts. No intermediate checkpoints: a stage is short and
    resumes by re-running; the final checkpoint is written by `save_checkpoint`."""
    gpu = on_gpu()
    from ..models.dtype import compute_dtype

    # bf16 autocast where it is fast (GPUs; CPUs with bf16 units), float32 master weights on CPU: the model is
    # loaded in float32 there, so small updates are not rounded away.
    bf16 = compute_dtype("cuda" if gpu else "cpu") == "bfloat16"
    return dict(
        output_dir=str(out_dir), per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum, learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps,
        # transformers 5 dropped `warmup_ratio`; a float in [0, 1) for `warmup_steps` is read as that ratio.
        warmup_steps=settings.warmup_ratio,
        logging_steps=settings.logging_steps, save_strategy="no", report_to=[], seed=settings.seed,
        bf16=bf16, use_cpu=not gpu, gradient_checkpointing=settings.gradient_checkpointing,
        dataloader_num_workers=0, **settings.extra,
    )


def lora_config(settings: TrainSettings, task_type: str = "CAUSAL_LM"):
    if not settings.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules="all-linear", task_type=task_type)


def save_checkpoint(model, tokenizer, out_dir: str | Path) -> Path:
    """Save weights (LoRA adapters merged in), config, tokenizer and chat template, so
    `from_pretrained(out_dir)` is all the next stage needs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):  # a PEFT model
        model = model.merge_and_unload()
    model.config.use_cache = True
    model.save_pretrained(out_dir)
    # A fast tokenizer keeps the padding of its last padded call (the probes pad on the left) and writes it
    # into tokenizer.json, which then decides `padding_side` on load: save it without that leftover.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_padding()
    tokenizer.save_pretrained(out_dir)
    return out_dir


def loss_summary(log_history: Sequence[dict], key: str = "loss") -> dict:
    losses = [entry[key] for entry in log_history if key in entry]
    if not losses:
        raise RuntimeError(f"training logged no {key!r}; nothing was trained")
    if not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"training produced a non-finite {key}: {losses}")
    return {f"first_{key}": losses[0], f"last_{key}": losses[-1], f"{key}_curve": losses, "steps": len(losses)}


def is_main_process() -> bool:
    """True in the driver and on rank 0 of a launched job (train/launch.py). Read from torch.distributed, not
    `accelerate.PartialState()`: building that singleton in the driver would fix its device choice before
    the Trainer builds its own."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def refuse_sharded_model(trainer) -> None:
    """Rank 0 saves the model it holds (`save_checkpoint`): the full model under plain DDP (each rank keeps
    a whole replica), only a shard under ZeRO-3 or FSDP, which would need
    `trainer.accelerator.get_state_dict` on every rank first (not built)."""
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is None:  # not a transformers Trainer (a test's stand-in): nothing sharded it
        return
    from accelerate.utils import DistributedType

    deepspeed = getattr(accelerator.state, "deepspeed_plugin", None)
    if accelerator.distributed_type == DistributedType.FSDP or (deepspeed is not None and deepspeed.zero_stage == 3):
        raise RuntimeError("this stage saves rank 0's model as is, which under FSDP or ZeRO-3 is a shard; use "
                           "DDP or ZeRO-1/2 (gathering a sharded state dict is not built yet)")


def run_guarded(stage: str, trainer, model, tokenizer, guard_example: Callable[[object], tuple[list, list]],
                probe_messages: Sequence[Sequence[dict]], settings: TrainSettings, out_dir: str | Path,
                loss_key: str = "loss") -> TrainResult:
    """Train with the stop-token guard around it; save the checkpoint and metrics.json in `out_dir`.

    `guard_example(trainer)` returns the examples of the first batches as the trainer's own collator
    renders them: (token ids, trained-position mask[, attended mask]) tuples, or one such tuple. The final
    end-of-turn token of every one must be trained.

    Under several processes (train/launch.py) every rank checks its own first batches (iterating a prepared
    dataloader synchronises RNG states across ranks, so all must), trains, and returns; only rank 0 probes,
    saves and writes metrics.json. That is safe under plain DDP because every rank holds the full model and
    `trainer.train()` ends with the ranks in step (the last gradient all-reduce and the loss gather); a
    sharded model (ZeRO-3, FSDP) would need gathering first, which `refuse_sharded_model` refuses."""
    main = is_main_process()
    refuse_sharded_model(trainer)
    checked = assert_examples_end_trained(guard_example(trainer), tokenizer, where=f"{stage} stage")
    report = GuardReport(end_of_turn_in_labels=True, tolerance=settings.runaway_tolerance, examples_checked=checked)
    # Probes generate with the unwrapped model and no collectives: one rank is enough, the others wait for it
    # in the first collective of `train()`.
    probes = list(probe_messages)[: settings.probe_prompts] if main else []
    if probes:
        report.runaway_before = runaway_rate(model, tokenizer, probes, settings.probe_max_new_tokens)
    started = time.perf_counter()
    trainer.train()
    # Every rank logs the same (all-reduced) losses, so metrics agree across ranks.
    metrics = {**loss_summary(trainer.state.log_history, loss_key), "train_seconds": time.perf_counter() - started}
    trained_model = trainer.model  # the unwrapped model (the DDP wrapper is `trainer.model_wrapped`)
    checkpoint = Path(out_dir) / "checkpoint"
    if not main:
        return TrainResult(checkpoint, metrics, report)
    if probes:
        report.runaway_after = runaway_rate(trained_model, tokenizer, probes, settings.probe_max_new_tokens)
    save_checkpoint(trained_model, tokenizer, checkpoint)
    (Path(out_dir) / "metrics.json").write_text(json.dumps(
        {"stage": stage, **metrics, "guard": report.as_dict(), "settings": asdict(settings)}, indent=2))
    check_runaway(report, where=f"{stage} stage")  # after saving, so a failed stage can be inspected
    return TrainResult(checkpoint, metrics, report)
