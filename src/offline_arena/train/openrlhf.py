"""`rm_ppo` with `ppo.engine: openrlhf`: the PPO half of the stage handed to OpenRLHF (Ray + vLLM + DeepSpeed),
which runs in its own environment or container; the reward model is still ours (`train/reward.py`).

    export_stage    the stage's prompts as the JSONL OpenRLHF reads (chat messages under `prompt`, rendered
                    by `--data.apply_chat_template`), one row per prompt each PPO step takes; checks that
                    OpenRLHF can load our reward model
    build_command   the `openrlhf.cli.train_ppo_ray` command line from our `PPOSettings` and the recipe's
                    `ppo.openrlhf` (config.OpenRLHFEngine)
    run_openrlhf    the stop-token guard around the run: probes the starting model, launches the command with
                    its log in the stage folder, collects the saved model (merging LoRA adapters), probes it,
                    and fails the stage when the runaway rate regressed, like every other trainer

The flag names are those of OpenRLHF's `openrlhf/cli/train_ppo_ray.py` at commit `OPENRLHF_COMMIT` (its
flags are dotted, `--actor.model_name_or_path`; older releases spelt them `--pretrain`, `--prompt_data`, ...).
tests/fake_openrlhf_engine.py holds that file's full flag list and parses our command with it.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from ..run_folder import CHECKPOINT, METRICS
from .common import TrainResult, chat_turns, load_policy, on_gpu, save_checkpoint
from .guard import GuardReport, StopTokenGuardError, check_runaway, runaway_rate
from .ppo import PPOSettings, _validate

OPENRLHF_COMMIT = "3c3be6234e0cb353e76bb8019947db9dfe99fca7"  # OpenRLHF main, 2026-08-13, whose CLI we read
INPUT_KEY = "prompt"
LOG_NAME = "openrlhf.log"

# PPOSettings fields OpenRLHF has no counterpart for: a changed value would be silently ignored, so it is refused.
UNMAPPED = {
    "vf_coef": "OpenRLHF trains a separate critic (initialised from the reward model), with its own optimiser; "
               "its value loss is not weighted into the policy's",
    "whiten_rewards": "OpenRLHF has no reward whitening (--reward.normalize_enable divides by a mean and std "
                      "stored in the reward model's config, another thing)",
}


class OpenRLHFError(RuntimeError):
    pass


@dataclass
class StageExport:
    prompt_file: Path     # JSONL, one {"prompt": [messages]} row per prompt a PPO step takes
    reward_model: Path    # our reward model checkpoint, loadable by OpenRLHF's RewardModel
    rows: int


# --- export ----------------------------------------------------------------------------------------------

def export_stage(prompts: Sequence[Sequence[dict]], out_dir: str | Path, settings: PPOSettings,
                 reward_model_path: str | Path) -> StageExport:
    """Write `out_dir/prompts.jsonl` and check the reward model. OpenRLHF walks its prompt file once per
    episode, `--rollout.batch_size` prompts a step; the file holds exactly `steps` steps' prompts (the
    stage's prompts in seeded shuffled passes, as our PPO walks them), so with one episode OpenRLHF takes
    as many PPO steps as ours would."""
    _validate(settings, prompts, None, reward_model_path)
    check_reward_model(reward_model_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "prompts.jsonl"
    rows = rollout_order(prompts, settings)
    with path.open("w", encoding="utf-8") as f:
        for messages in rows:
            f.write(json.dumps({INPUT_KEY: chat_turns(messages)}, ensure_ascii=False) + "\n")
    return StageExport(path, Path(reward_model_path), len(rows))


def prompts_per_step(settings: PPOSettings) -> int:
    return settings.rollouts_per_step // settings.samples_per_prompt


def rollout_order(prompts: Sequence[Sequence[dict]], settings: PPOSettings) -> list:
    """`steps` × `prompts_per_step` prompts: the prompt set in a fresh seeded order, pass after pass."""
    rng = random.Random(settings.seed)
    order: list = []
    queue: list[int] = []
    for _ in range(settings.steps * prompts_per_step(settings)):
        if not queue:
            queue = list(range(len(prompts)))
            rng.shuffle(queue)
        order.append(prompts[queue.pop()])
    return order


def check_reward_model(path: str | Path) -> None:
    """OpenRLHF's RewardModel (openrlhf/models/model.py, `_get_reward_model`) is the config's base model under
    its `base_model_prefix` plus a bias-free `nn.Linear(hidden_size, 1)` named by `value_head_prefix`
    (default "score"), loaded with `from_pretrained`: exactly the layout of a transformers
    `*ForSequenceClassification` with one label. A head it does not find (another name, more labels) would
    be freshly initialised, and a bias dropped, without an error: check here instead."""
    from safetensors import safe_open

    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    head = config.get("value_head_prefix", "score")
    labels = len(config.get("id2label", {})) or config.get("num_labels", 1)
    if labels != 1:
        raise OpenRLHFError(f"reward model {path}: {labels} labels; OpenRLHF's reward head has one output")
    shapes = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            shapes.update({k: f.get_slice(k).get_shape() for k in f.keys() if k.startswith(f"{head}.")})
    hidden = config.get("hidden_size") or config.get("text_config", {}).get("hidden_size")
    if shapes.get(f"{head}.weight") != [1, hidden]:
        raise OpenRLHFError(f"reward model {path}: OpenRLHF reads its head from {head}.weight of shape "
                            f"[1, {hidden}]; found {shapes or 'no safetensors weights under that name'}")
    if f"{head}.bias" in shapes:
        raise OpenRLHFError(f"reward model {path}: {head}.bias would be dropped (OpenRLHF's head has no bias)")


def reward_pooling(path: str | Path) -> dict:
    """Which token the reward model's score is read at, in training and under OpenRLHF. A transformers
    classifier (TRL's RewardTrainer, our PPO) reads the last token that is not the pad token of the answer
    as rendered for it (`models.chat.reward_input_ids`); OpenRLHF reads the last token of prompt + generated
    answer, i.e. the stop token the answer ended on. Reward models trained here are read at that token
    (train/reward.py). One trained on the full chat template (elsewhere, or by an earlier version of ours)
    differs where the template puts something after that token (ChatML's newline) and pad == end-of-turn
    (SmolLM2): OpenRLHF would read a position the head was not trained at."""
    from transformers import AutoConfig, AutoTokenizer

    from ..models.chat import end_of_turn_token_id, reward_input_ids, scores_at_end_of_turn

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    config = AutoConfig.from_pretrained(str(path))
    pad = getattr(config.get_text_config(), "pad_token_id", None)  # composite configs keep it in text_config
    pad = pad if pad is not None else tokenizer.pad_token_id
    ids = reward_input_ids(tokenizer, [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}],
                           end_at_end_of_turn=scores_at_end_of_turn(config))
    trained = next(t for t in reversed(ids) if t != pad)
    openrlhf = end_of_turn_token_id(tokenizer)
    names = tokenizer.convert_ids_to_tokens([trained, openrlhf])
    return {"trained_at": names[0], "openrlhf_reads": names[1], "same": trained == openrlhf}


# --- the command -----------------------------------------------------------------------------------------

def build_command(export: StageExport, model_path: str | Path, out_dir: str | Path, settings: PPOSettings,
                  engine) -> list[str]:
    """The launcher, then OpenRLHF's flags: the layout, the models and data, our PPO knobs, and last the
    recipe's `extra_args` (argparse keeps a flag's last value, so they override ours). `engine` is the
    recipe's `ppo.openrlhf` (config.OpenRLHFEngine)."""
    check_settings(settings, engine)
    out_dir = Path(out_dir).resolve()
    paths = {"--actor.model_name_or_path": Path(model_path).resolve(),
             "--reward.model_name_or_path": export.reward_model.resolve(),
             "--data.prompt_dataset": export.prompt_file.resolve()}
    for flag, path in paths.items():  # OpenRLHF splits these on "," (several datasets / reward models) and "@"
        if "," in str(path) or "@" in str(path):
            raise OpenRLHFError(f"{flag} {path}: OpenRLHF splits paths on ',' and '@'; use a folder without them")
    args = {**_layout_args(engine), **paths,
            "--data.input_key": INPUT_KEY, "--data.apply_chat_template": True,
            "--ckpt.output_dir": out_dir / "openrlhf_model",   # the final model (HF format, or LoRA adapters)
            "--ckpt.path": out_dir / "openrlhf_ckpt",          # DeepSpeed checkpoints, if extra_args ask for them
            **_ppo_args(settings)}
    return [*engine.launcher, *_argv(args), *engine.extra_args]


def _layout_args(engine) -> dict:
    """OpenRLHF's "hybrid engine" layout (examples/scripts/train_ppo_ray_hybrid_engine.sh): every model and
    the vLLM engines on the same GPUs, vLLM and DeepSpeed asleep while the other works."""
    gpus = {"num_nodes": engine.nodes, "num_gpus_per_node": engine.gpus_per_node}
    layout = {f"--{role}.{key}": value for role in ("actor", "ref", "critic", "reward") for key, value in gpus.items()}
    return {**layout, "--train.colocate_all": True,
            "--vllm.num_engines": engine.nodes * engine.gpus_per_node // engine.vllm_tensor_parallel_size,
            "--vllm.tensor_parallel_size": engine.vllm_tensor_parallel_size,
            "--vllm.gpu_memory_utilization": 0.5, "--vllm.enable_sleep": True, "--ds.enable_sleep": True}


def _ppo_args(s: PPOSettings) -> dict:
    """Our PPO knobs under OpenRLHF's names. The learning rate is constant in our PPO (OpenRLHF's default is
    a cosine schedule with warm-up); the value knobs go to OpenRLHF's critic."""
    args = {
        "--rollout.batch_size": prompts_per_step(s), "--rollout.n_samples_per_prompt": s.samples_per_prompt,
        "--train.num_episodes": 1,  # the prompt file holds every step's prompts (export_stage)
        "--train.batch_size": s.minibatch_size, "--train.max_epochs": s.ppo_epochs,
        "--actor.adam.lr": s.learning_rate, "--critic.adam.lr": s.learning_rate,
        "--actor.adam.eps": s.adam_eps, "--critic.adam.eps": s.adam_eps,
        "--actor.max_norm": s.max_grad_norm, "--critic.max_norm": s.max_grad_norm,
        "--actor.lr_scheduler": "constant", "--critic.lr_scheduler": "constant",
        "--algo.kl.init_coef": s.init_kl_coef, "--algo.advantage.estimator": "gae",
        "--algo.advantage.gamma": s.gamma, "--algo.advantage.lambd": s.lam,
        "--actor.eps_clip": s.cliprange, "--critic.value_clip": s.cliprange_value,
        "--rollout.max_new_tokens": s.max_new_tokens, "--rollout.temperature": s.temperature,
        "--rollout.top_p": 1.0, "--train.seed": s.seed,
    }
    if s.missing_eos_penalty:
        if s.missing_eos_penalty < 0:
            raise OpenRLHFError(f"missing_eos_penalty {s.missing_eos_penalty} < 0 would reward runaways")
        # OpenRLHF's nearest: a rollout cut at the token limit (finish_reason "length") gets this reward
        # outright, where ours subtracts the penalty from its score.
        args["--reward.stop_properly_penalty_coef"] = -s.missing_eos_penalty
    if s.lora:  # OpenRLHF's LoRA dropout defaults to 0, as ours (PPO's ratio is exactly 1 before an update)
        args.update({"--ds.lora.rank": s.lora_r, "--ds.lora.alpha": s.lora_alpha})
    return args


def _argv(args: dict) -> list[str]:
    """Flags with values, and switches (True: the flag alone) as OpenRLHF's store_true flags take them."""
    argv: list[str] = []
    for flag, value in args.items():
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def check_settings(settings: PPOSettings, engine) -> None:
    """Raise on settings OpenRLHF would run otherwise than we mean, or refuse after minutes of start-up."""
    _check_mappable(settings)
    _check_batches(settings, engine)


def _check_mappable(settings: PPOSettings) -> None:
    if settings.adaptive_kl:
        raise OpenRLHFError("OpenRLHF runs a fixed KL coefficient here (set the recipe's target_kl: null)")
    defaults = PPOSettings()
    changed = [f"{name} ({UNMAPPED[name]})" for name in UNMAPPED if getattr(settings, name) != getattr(defaults, name)]
    if changed:
        raise OpenRLHFError("no OpenRLHF counterpart for " + "; ".join(changed)
                            + ". Drop them, or pass OpenRLHF's own flags in ppo.openrlhf.extra_args")


def _check_batches(settings: PPOSettings, engine) -> None:
    """What OpenRLHF and DeepSpeed would assert after minutes of start-up on the cluster: each optimizer
    step's rollouts (`--train.batch_size`) split evenly over every actor GPU in micro-batches, and each
    step's rollouts make at least one micro-batch per GPU."""
    gpus = engine.nodes * engine.gpus_per_node
    micro = int(_flag_value(engine.extra_args, "--train.micro_batch_size") or 1)
    if settings.minibatch_size % (gpus * micro):
        raise OpenRLHFError(f"minibatch_size {settings.minibatch_size} (--train.batch_size) must be a multiple of "
                            f"{gpus} GPUs x --train.micro_batch_size {micro}; set ppo.extra.minibatch_size")
    rollout_micro = int(_flag_value(engine.extra_args, "--rollout.micro_batch_size") or 1)
    if settings.rollouts_per_step // rollout_micro < gpus:
        raise OpenRLHFError(f"rollouts_per_step {settings.rollouts_per_step} / --rollout.micro_batch_size "
                            f"{rollout_micro} is fewer micro-batches than the {gpus} actor GPUs")


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The last value given to `flag` in `argv` ("--flag value" or "--flag=value"), as argparse keeps it."""
    value = None
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


# --- the run ---------------------------------------------------------------------------------------------

def run_openrlhf(model_path: str | Path, prompts: Sequence[Sequence[dict]], out_dir: str | Path,
                 settings: PPOSettings, reward_model_path: str | Path, engine,
                 probe_messages: Sequence[Sequence[dict]] = ()) -> TrainResult:
    """PPO on `prompts` by OpenRLHF, from the causal LM at `model_path` against our reward model. Writes
    `out_dir/{prompts.jsonl, command.json, openrlhf.log, metrics.json, checkpoint/}`; the stage then
    evaluates `checkpoint/` like any other."""
    out_dir = Path(out_dir)
    export = export_stage(prompts, out_dir, settings, reward_model_path)
    command = build_command(export, model_path, out_dir, settings, engine)
    (out_dir / "command.json").write_text(json.dumps(command, indent=2))
    assert_rollouts_stop_on_end_of_turn(model_path)
    pooling = reward_pooling(reward_model_path)
    if not pooling["same"]:
        raise OpenRLHFError(
            f"reward model {reward_model_path} reads its score at {pooling['trained_at']!r}, OpenRLHF at "
            f"{pooling['openrlhf_reads']!r}, the stop token a rollout ends on: its head would score a position it "
            "was not trained at. Train it with train/reward.py, which reads at the end-of-turn token")
    report = GuardReport(end_of_turn_in_labels=True, tolerance=settings.runaway_tolerance)
    probes = list(probe_messages)[: settings.probe_prompts]
    if probes:
        report.runaway_before = probe_runaway(model_path, probes, settings)

    output, checkpoint, log = out_dir / "openrlhf_model", out_dir / CHECKPOINT, out_dir / LOG_NAME
    for stale in (output, checkpoint):  # a resumed stage must not mistake an earlier attempt's model for this one's
        shutil.rmtree(stale, ignore_errors=True)
    started = time.perf_counter()
    returncode = launch(command, log)
    train_seconds = time.perf_counter() - started
    if returncode != 0:
        raise OpenRLHFError(f"OpenRLHF exited with status {returncode}; its log: {log}\n{_tail(log)}")
    collect_checkpoint(output, model_path, checkpoint, log)

    if probes:
        report.runaway_after = probe_runaway(checkpoint, probes, settings)
    steps = logged_steps(log.read_text(encoding="utf-8", errors="replace"))
    metrics = {"engine": "openrlhf", "openrlhf_commit_read": OPENRLHF_COMMIT, "command": command, "log": str(log),
               "prompt_rows": export.rows, "steps": len(steps), "planned_steps": settings.steps,
               "train_seconds": train_seconds, "reward_pooling": pooling,
               "reward_read_where_trained": pooling["same"]}  # a scalar, so the stage summary keeps it
    (out_dir / METRICS).write_text(json.dumps(
        {"stage": "ppo", **metrics, "guard": report.as_dict(), "settings": asdict(settings)}, indent=2))
    check_runaway(report, where="ppo stage (openrlhf)")  # after saving, so a failed stage can be inspected
    return TrainResult(checkpoint, metrics, report)


def assert_rollouts_stop_on_end_of_turn(model_path: str | Path) -> None:
    """PPO's stop-token check for OpenRLHF's rollouts: vLLM stops on the tokenizer's EOS and the model's
    generation-config EOS ids (OpenRLHF passes no stop ids of its own). Unless the chat template's
    end-of-turn token is one of them, rollouts run past the end of the answer until the token limit."""
    from transformers import AutoTokenizer, GenerationConfig

    from ..models.chat import end_of_turn_token_id

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    try:
        eos = GenerationConfig.from_pretrained(str(model_path)).eos_token_id
    except OSError:  # no generation_config.json: vLLM falls back to the tokenizer's EOS
        eos = None
    stops = {tokenizer.eos_token_id, *(eos if isinstance(eos, (list, tuple)) else [eos])} - {None}
    eot = end_of_turn_token_id(tokenizer)
    if eot not in stops:
        raise StopTokenGuardError(
            f"ppo stage (openrlhf): the end-of-turn token {tokenizer.convert_ids_to_tokens(eot)!r} (id {eot}) is "
            f"not among the EOS ids {sorted(stops)} vLLM stops on; add it to {model_path}/generation_config.json "
            "eos_token_id, or rollouts never end with the answer")


def probe_runaway(model_path: str | Path, probes: Sequence[Sequence[dict]], settings: PPOSettings) -> float:
    model, tokenizer = load_policy(model_path, for_training=False)
    model.to("cuda" if on_gpu() else "cpu")
    rate = runaway_rate(model, tokenizer, probes, settings.probe_max_new_tokens)
    del model
    if on_gpu():  # this machine may be one of the cluster's: hand the memory back before vLLM asks for it
        import torch

        torch.cuda.empty_cache()
    return rate


def launch(command: Sequence[str], log: Path) -> int:
    """Run `command`, its output both into `log` and on stderr as it comes; the exit status. Every path we
    hand OpenRLHF is absolute, so nothing depends on the working directory (the caller's, so a relative
    launcher means what it says)."""
    try:
        process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", bufsize=1)
    except OSError as error:
        raise OpenRLHFError(f"could not start OpenRLHF's launcher {command[0]!r}: {error}") from None
    with process, log.open("w", encoding="utf-8") as f:
        f.write(f"$ {shlex.join(command)}\n")
        for line in process.stdout:
            f.write(line)
            f.flush()
            sys.stderr.write(line)
    return process.returncode


def collect_checkpoint(output: Path, start_model: str | Path, checkpoint: Path, log: Path) -> Path:
    """OpenRLHF's final model (`--ckpt.output_dir`) as our `checkpoint/`: a full HF model is moved there;
    LoRA adapters (what it saves when `--ds.lora.rank` > 0) are merged into the starting model. Either way
    the checkpoint gets the starting model's tokenizer (OpenRLHF saves its left-padding copy)."""
    from transformers import AutoTokenizer

    weights = [p for p in output.glob("*") if p.suffix in (".safetensors", ".bin")] if output.is_dir() else []
    if not (output / "config.json").is_file() or not weights:
        raise OpenRLHFError(f"OpenRLHF exited 0 but saved no model in {output} (config.json and weights); "
                            f"its log: {log}\n{_tail(log)}")
    tokenizer = AutoTokenizer.from_pretrained(str(start_model))
    if (output / "adapter_config.json").is_file():
        save_checkpoint(_merged(start_model, output), tokenizer, checkpoint)
    else:
        output.rename(checkpoint)
        tokenizer.save_pretrained(checkpoint)
    return checkpoint


def _merged(start_model: str | Path, adapters: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(start_model), dtype="auto")  # the start's own dtype
    return PeftModel.from_pretrained(base, str(adapters)).merge_and_unload()


def logged_steps(log_text: str) -> list[int]:
    """The global steps OpenRLHF's trainer logged ("✨ Global step 3: {...}", openrlhf/trainer/ppo_trainer.py)."""
    return [int(m) for m in re.findall(r"Global step (\d+):", log_text)]


def _tail(log: Path, lines: int = 20) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])
