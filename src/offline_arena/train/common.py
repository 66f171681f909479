"""What every trainer shares: settings, loading the policy, TRL arguments that work on CPU and GPU,
LoRA, saving a checkpoint the next stage (or any user) can load, and the guarded training run."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

from ..run_folder import CHECKPOINT, METRICS
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
    group_by_length: bool = train_default("group_by_length")  # batches of similar length (less padding)
    probe_prompts: int = train_default("probe_prompts")        # runaway-rate probe size (0: no after-check)
    probe_max_new_tokens: int | list[int] = 64  # token limit of a probe generation (or each probe's own)
    runaway_tolerance: float = train_default("runaway_tolerance")  # allowed rise of the runaway rate
    rejected_end_of_turn: bool = train_default("rejected_end_of_turn")  # dpo: score the rejected answer's ending
    extra: dict = field(default_factory=dict)  # passed through to the TRL config (e.g. beta for DPO)

    @classmethod
    def from_recipe(cls, train, **fixed) -> "TrainSettings":
        """Settings from a recipe's `config.Train` (every field it shares with these), plus `fixed` ones
        the recipe sets elsewhere (the seed, the probes' token limit)."""
        shared = {f.name for f in fields(cls)} & set(type(train).model_fields)
        return cls(**{name: getattr(train, name) for name in shared}, **fixed)


def longest_budget(settings) -> int:
    """The largest token limit of a stage's prompts (`probe_max_new_tokens`, one or one per prompt): the one
    completion length TRL's on-policy trainers (GRPO, distillation) take for all of their prompts."""
    limit = settings.probe_max_new_tokens
    return limit if isinstance(limit, int) else max(limit)


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


def seeded_policy(model_path: str | Path, settings):
    """The policy a trainer trains (`load_policy`), with every RNG seeded from `settings.seed` first: LoRA
    adapters are initialised when the model is wrapped, before a Trainer seeds anything."""
    from transformers import set_seed

    set_seed(settings.seed)
    return load_policy(model_path, lora=settings.lora)


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
        bf16=bf16, use_cpu=not gpu, **{_checkpointing_field(): settings.gradient_checkpointing},
        dataloader_num_workers=0, **settings.extra,
    )


def length_grouping(trainer_cls, settings: TrainSettings):
    """`trainer_cls` and the config arguments that batch examples of similar length together when
    `settings.group_by_length` (sft, dpo, kto and the reward model; the on-policy trainers sample prompts
    their own way). Padding is compute on a CPU: the quickstart's answers run from a line to 320 tokens, and
    a random batch of four pads each to the longest.

    transformers' `LengthGroupedSampler` measures an example by its `input_ids` (or a `length` column, which
    the trainers' column pruning drops before the sampler is built), so it fails on preference and KTO rows
    (`prompt_ids`, `chosen_ids`, `rejected_ids`, ...). The subclass measures every token-id column instead.
    The sampler still shuffles: random megabatches of 50 batches (fewer on small sets), sorted inside."""
    if not settings.group_by_length:
        return trainer_cls, {}

    class LengthGrouped(trainer_cls):
        def _get_train_sampler(self, train_dataset=None):
            from transformers.trainer_pt_utils import LengthGroupedSampler

            dataset = train_dataset if train_dataset is not None else self.train_dataset
            columns = [name for name in dataset.column_names if name.endswith("ids")]
            lengths = [sum(len(ids) for ids in row) for row in zip(*(dataset[name] for name in columns))]
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=lengths)

    LengthGrouped.__name__ = f"LengthGrouped{trainer_cls.__name__}"
    return LengthGrouped, {"train_sampling_strategy": "group_by_length"}


def _checkpointing_field() -> str:
    """transformers 5.2x renamed `gradient_checkpointing` to `activation_checkpointing` and warns on every
    trainer built with the old name (in every stage of `make run`); the new name where it exists."""
    from dataclasses import fields

    from transformers import TrainingArguments

    names = {f.name for f in fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


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


def fsdp_version(trainer) -> int | None:
    """1 or 2 when accelerate shards the model with FSDP, else None."""
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is None:  # not a transformers Trainer (a test's stand-in): nothing sharded it
        return None
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.FSDP:
        return None
    return accelerator.state.fsdp_plugin.fsdp_version


def refuse_sharded_model(trainer) -> None:
    """Refuse the sharded set-ups whose saving is not built or not tested; FSDP2 is gathered
    (`trained_model_on_rank0`).

    - ZeRO-3: accelerate's `get_state_dict` gathers it through DeepSpeed's `_zero3_consolidated_16bit_state_dict`
      (only with `stage3_gather_16bit_weights_on_model_save`): the engine's compute-dtype weights, not its
      float32 master copy under bf16. DeepSpeed is not installed here, so none of it is built or tested.
    - FSDP1: accelerate's gather differs (FSDP wrappers, flat parameters) and is not tested.
    - an FSDP config that accelerate did not apply: accelerate 1.15 turns `distributed_type: FSDP` into FSDP
      only on GPUs and other accelerators (`AcceleratorState`); with CPU processes it silently trains plain
      DDP, every rank holding the whole model, which is not what the config asked for."""
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is None:
        return
    import os

    deepspeed = getattr(accelerator.state, "deepspeed_plugin", None)
    if deepspeed is not None and deepspeed.zero_stage == 3:
        raise RuntimeError("ZeRO-3 is not supported (gathering its shards before saving is not built or tested); "
                           "use ZeRO-1/2, DDP or FSDP2 (fsdp_version: 2)")
    version = fsdp_version(trainer)
    if version == 1:
        raise RuntimeError("FSDP1 is not supported (its gathering is not tested); set fsdp_version: 2")
    if version is None and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        raise RuntimeError(f"the accelerate config asks for FSDP, but accelerate runs {accelerator.distributed_type}"
                           " (accelerate shards with FSDP on GPUs only, not on CPU processes); drop the FSDP "
                           "config to train with DDP")


def fsdp_original_class(module) -> type:
    """The class a module had before FSDP2's `fully_shard`, which swaps it for a subclass `FSDP<Class>`."""
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(module).__mro__ if not issubclass(c, FSDPModule))


def unsharded_copy(sharded, state_dict: dict):
    """A plain module of the sharded model's architecture (a transformers model, or a PEFT model around one)
    holding `state_dict`: what `save_checkpoint` can merge and save, and the probes can generate with on one
    rank. On CPU, where the gathered state dict is: rank 0's GPU holds its shard and optimizer state, and a
    whole copy there might not fit (so on GPUs the after-training probes run on CPU, slowly for a large
    model). Built from the config, not from disk: the stage's model path is not at hand, and the
    architecture (a fresh score head, adapters) is what training made of it."""
    import copy

    from peft import PeftModel, get_peft_model

    peft = isinstance(sharded, PeftModel)
    body = sharded.get_base_model() if peft else sharded
    # The body's stored dtype: float32 when all weights train, the checkpoint's own under LoRA (common.load_policy).
    dtype = body.get_input_embeddings().weight.dtype
    whole = fsdp_original_class(body)._from_config(copy.deepcopy(body.config), dtype=dtype)
    if peft:
        name = sharded.active_adapter
        whole = get_peft_model(whole, copy.deepcopy(sharded.peft_config[name]), adapter_name=name)
    whole.load_state_dict(state_dict, strict=True)  # every weight gathered, nothing left as initialised
    return whole


def trained_model_on_rank0(trainer):
    """The trained model, whole, on rank 0 (None on the other ranks). Called on every rank: under FSDP2 the
    weights are sharded and gathering them is a collective (`accelerator.get_state_dict`, a full state dict
    on rank 0 in CPU memory), after which rank 0 loads them into an unsharded copy. Without sharding rank 0's
    model already is the whole model (DDP keeps a replica on every rank)."""
    if fsdp_version(trainer) is None:
        return trainer.model if is_main_process() else None  # the unwrapped model (DDP's is `model_wrapped`)
    state_dict = trainer.accelerator.get_state_dict(trainer.model)
    return unsharded_copy(trainer.model, state_dict) if is_main_process() else None


def run_guarded(stage: str, trainer, model, tokenizer, guard_example: Callable[[object], tuple[list, list]],
                probe_messages: Sequence[Sequence[dict]], settings: TrainSettings, out_dir: str | Path,
                loss_key: str = "loss") -> TrainResult:
    """Train with the stop-token guard around it; save the checkpoint and metrics.json in `out_dir`.

    `guard_example(trainer)` returns the examples of the first batches as the trainer's own collator
    renders them: (token ids, trained-position mask[, attended mask]) tuples, or one such tuple. The final
    end-of-turn token of every one must be trained.

    Under several processes (train/launch.py) every rank checks its own first batches (iterating a prepared
    dataloader synchronises RNG states across ranks, so all must), trains, and takes part in
    `trained_model_on_rank0` (a gather under FSDP2); only rank 0 probes, saves and writes metrics.json. Under
    plain DDP every rank holds the full model and `trainer.train()` ends with the ranks in step (the last
    gradient all-reduce and the loss gather); under FSDP2 rank 0 probes and saves the gathered, unsharded
    copy (a sharded model cannot generate on one rank alone). ZeRO-3 and FSDP1 are refused
    (`refuse_sharded_model`)."""
    main = is_main_process()
    refuse_sharded_model(trainer)
    checked = assert_examples_end_trained(guard_example(trainer), tokenizer, where=f"{stage} stage")
    report = GuardReport(end_of_turn_in_labels=True, tolerance=settings.runaway_tolerance, examples_checked=checked)
    # Probes generate with the unwrapped model and no collectives: one rank is enough, the others wait for it
    # in the first collective of `train()`.
    probes = list(probe_messages)[: settings.probe_prompts] if main else []
    if probes:
        report.runaway_before = runaway_rate(model, tokenizer, probes, settings.probe_max_new_tokens)
    from .step_progress import show_step_progress

    show_step_progress(trainer, stage, loss_key)
    started = time.perf_counter()
    trainer.train()
    # Every rank logs the same (all-reduced) losses, so metrics agree across ranks.
    metrics = {**loss_summary(trainer.state.log_history, loss_key), "train_seconds": time.perf_counter() - started}
    trained_model = trained_model_on_rank0(trainer)  # on every rank: a collective under FSDP2
    checkpoint = Path(out_dir) / CHECKPOINT
    if not main:
        return TrainResult(checkpoint, metrics, report)
    if probes:
        report.runaway_after = runaway_rate(trained_model, tokenizer, probes, settings.probe_max_new_tokens)
    save_checkpoint(trained_model, tokenizer, checkpoint)
    (Path(out_dir) / METRICS).write_text(json.dumps(
        {"stage": stage, **metrics, "guard": report.as_dict(), "settings": asdict(settings)}, indent=2))
    check_runaway(report, where=f"{stage} stage")  # after saving, so a failed stage can be inspected
    return TrainResult(checkpoint, metrics, report)
