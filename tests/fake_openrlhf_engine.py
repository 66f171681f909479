"""A stand-in for OpenRLHF's `python -m openrlhf.cli.train_ppo_ray`, so tests/test_openrlhf.py can run our
adapter end to end without Ray, vLLM or GPUs. It stands in for OpenRLHF, not for the adapter: it parses the
command line with OpenRLHF's own flag names and value types (`TRAIN_PPO_RAY_FLAGS`, every flag the real
parser defines at `OPENRLHF_COMMIT`), asserts what OpenRLHF would (the models, the prompt data, the GPU
layout, DeepSpeed's batch arithmetic), reads the prompt file as OpenRLHF's PromptDataset takes it, logs a
"Global step" line per PPO step, and saves the starting model to `--ckpt.output_dir` as the
"trained" one (LoRA adapters when `--ds.lora.rank` > 0, as OpenRLHF saves them).

Test controls, not OpenRLHF's: --fake.exit N (fail with status N), --fake.no_save (exit 0, save nothing),
--fake.degrade (save a model whose output layer never picks the EOS token: a runaway regression).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

OPENRLHF_COMMIT = "3c3be6234e0cb353e76bb8019947db9dfe99fca7"  # OpenRLHF main, 2026-08-13

# Every option of openrlhf/cli/train_ppo_ray.py at OPENRLHF_COMMIT: "switch" (store_true/store_false), or the
# value's type with its nargs. Read by building that file's argparse parser and listing its actions; to
# refresh after OpenRLHF moves, do the same on its new source and update the commit above.
TRAIN_PPO_RAY_FLAGS = {
    "--ref.num_nodes": "int", "--ref.num_gpus_per_node": "int", "--reward.num_nodes": "int",
    "--reward.num_gpus_per_node": "int", "--train.colocate_actor_ref": "switch", "--actor.num_nodes": "int",
    "--actor.num_gpus_per_node": "int", "--critic.num_nodes": "int", "--critic.num_gpus_per_node": "int",
    "--train.colocate_critic_reward": "switch", "--train.colocate_all": "switch", "--vllm.num_engines": "int",
    "--vllm.tensor_parallel_size": "int", "--vllm.sync_backend": "str", "--vllm.sync_with_ray": "switch",
    "--vllm.enable_prefix_caching": "switch", "--vllm.enforce_eager": "switch", "--vllm.enable_sleep": "switch",
    "--vllm.gpu_memory_utilization": "float", "--algo.advantage.is_correction_enable": "switch",
    "--algo.advantage.is_correction_threshold": "float 2", "--algo.advantage.is_correction_type": "str",
    "--train.async_enable": "switch", "--train.async_queue_size": "int", "--train.partial_rollout_enable": "switch",
    "--eval.steps": "int", "--ckpt.save_steps": "int", "--logger.logging_steps": "int", "--ckpt.path": "str",
    "--ckpt.save_hf": "switch", "--ckpt.disable_ds": "switch", "--ckpt.max_num": "int", "--ckpt.max_mem": "float",
    "--ckpt.load_enable": "switch", "--ckpt.best_metric_key": "str", "--ds.use_universal_ckpt": "switch",
    "--local_rank": "int", "--ds.zero_stage": "int", "--actor.gradient_checkpointing_enable": "switch",
    "--ds.deepcompile": "switch", "--ds.param_dtype": "str", "--train.enable_ema": "switch",
    "--train.ema_beta": "float", "--ds.zpg": "int", "--ds.adam_offload": "switch", "--ds.attn_implementation": "str",
    "--ds.experts_implementation": "str", "--ds.use_liger_kernel": "switch", "--ds.grad_accum_dtype": "str",
    "--ds.overlap_comm": "switch", "--actor.gradient_checkpointing_reentrant": "switch",
    "--data.disable_fast_tokenizer": "switch", "--data.dataloader_num_workers": "int", "--ds.enable_sleep": "switch",
    "--ds.tensor_parallel_size": "int", "--ds.packing_samples": "switch", "--train.dynamic_batch_enable": "switch",
    "--rollout.max_tokens_per_gpu": "int", "--train.max_tokens_per_gpu": "int", "--ds.load_in_4bit": "switch",
    "--ds.lora.rank": "int", "--ds.lora.alpha": "int", "--ds.lora.target_modules": "str *",
    "--ds.lora.dropout": "float", "--ckpt.output_dir": "str", "--train.num_episodes": "int",
    "--rollout.batch_size": "int", "--rollout.vllm_generate_batch_size": "int", "--rollout.micro_batch_size": "int",
    "--train.max_epochs": "int", "--data.max_len": "int", "--rollout.max_new_tokens": "int",
    "--data.max_samples": "int", "--actor.eps_clip": "float", "--actor.eps_clip_low_high": "float 2",
    "--actor.dual_clip": "float", "--critic.value_clip": "float", "--algo.advantage.lambd": "float",
    "--algo.advantage.gamma": "float", "--train.micro_batch_size": "int", "--train.batch_size": "int",
    "--reward.normalize_enable": "switch", "--rollout.top_p": "float", "--rollout.temperature": "float",
    "--train.seed": "int", "--train.full_determinism_enable": "switch", "--critic.freezing_steps": "int",
    "--rollout.n_samples_per_prompt": "int", "--critic.save_value_network": "switch", "--algo.kl.target": "float",
    "--algo.kl.horizon": "int", "--algo.kl.init_coef": "float", "--actor.policy_loss_type": "str",
    "--algo.kl.estimator": "str", "--actor.aux_loss_coef": "float", "--actor.entropy_coef": "float",
    "--reward.clip_range": "float 2", "--actor.optim": "str", "--actor.muon.lr": "float",
    "--actor.muon.momentum": "float", "--actor.muon.ns_steps": "int", "--actor.muon.nesterov": "switch",
    "--actor.muon.no_nesterov": "switch", "--actor.adam.lr": "float", "--actor.adam.betas": "float 2",
    "--actor.adam.eps": "float", "--actor.adam.weight_decay": "float", "--actor.lr_scheduler": "str",
    "--actor.lr_warmup_ratio": "float", "--actor.min_lr_ratio": "float", "--actor.max_norm": "float",
    "--critic.optim": "str", "--critic.muon.lr": "float", "--critic.muon.momentum": "float",
    "--critic.muon.ns_steps": "int", "--critic.muon.nesterov": "switch", "--critic.muon.no_nesterov": "switch",
    "--critic.adam.lr": "float", "--critic.adam.betas": "float 2", "--critic.adam.eps": "float",
    "--critic.adam.weight_decay": "float", "--critic.lr_scheduler": "str", "--critic.lr_warmup_ratio": "float",
    "--critic.min_lr_ratio": "float", "--critic.max_norm": "float", "--algo.advantage.estimator": "str",
    "--algo.kl.use_loss": "switch", "--algo.advantage.no_std_norm": "switch",
    "--reward.overlong_buffer_len": "float", "--reward.overlong_penalty_factor": "float",
    "--reward.stop_properly_penalty_coef": "float", "--ds.ring_attn_size": "int",
    "--ds.ring_attn_head_stride": "int", "--actor.model_name_or_path": "str", "--reward.model_name_or_path": "str",
    "--reward.remote_url": "str", "--critic.model_name_or_path": "str", "--ds.value_head_prefix": "str",
    "--ref.offload": "switch", "--reward.offload": "switch", "--train.agent_func_path": "str",
    "--data.prompt_dataset": "str", "--data.prompt_probs": "str", "--data.prompt_split": "str",
    "--eval.dataset": "str", "--eval.split": "str", "--eval.temperature": "float",
    "--eval.n_samples_per_prompt": "int", "--data.input_key": "str", "--data.label_key": "str",
    "--data.input_template": "str", "--data.apply_chat_template": "switch", "--logger.wandb.key": "str",
    "--logger.wandb.org": "str", "--logger.wandb.group": "str", "--logger.wandb.project": "str",
    "--logger.wandb.run_name": "str", "--algo.dynamic_filtering_enable": "switch",
    "--algo.dynamic_filtering_range": "float 2", "--data.image_key": "str", "--data.max_images_per_prompt": "int",
    "--actor.freeze_visual_encoder": "switch", "--logger.tensorboard_dir": "str", "--use_ms": "switch",
}

# OpenRLHF's defaults for the flags this stand-in checks.
DEFAULTS = {"actor.num_nodes": 1, "actor.num_gpus_per_node": 8, "ref.num_nodes": 1, "ref.num_gpus_per_node": 8,
            "vllm.num_engines": None, "vllm.tensor_parallel_size": 1, "rollout.batch_size": 1024,
            "rollout.micro_batch_size": 1, "rollout.n_samples_per_prompt": 1, "train.batch_size": 128,
            "train.micro_batch_size": 1, "train.num_episodes": 1, "train.max_epochs": 1, "data.input_key": "input",
            "ckpt.output_dir": "./ckpt", "ckpt.path": "./ckpt/checkpoints_ppo_ray", "algo.kl.init_coef": 0.01,
            "ds.lora.rank": 0, "ds.lora.alpha": 16}


def parser() -> argparse.ArgumentParser:
    # allow_abbrev off: a near-miss of a real flag name must fail here, not match by prefix.
    p = argparse.ArgumentParser(prog="fake_openrlhf_engine", allow_abbrev=False)
    types = {"int": int, "float": float, "str": str}
    for flag, kind in TRAIN_PPO_RAY_FLAGS.items():
        if kind == "switch":
            p.add_argument(flag, action="store_true")
            continue
        type_name, _, nargs = kind.partition(" ")
        default = DEFAULTS.get(flag[2:])
        p.add_argument(flag, type=types[type_name], nargs=int(nargs) if nargs.isdigit() else (nargs or None),
                       default=default)
    p.add_argument("--fake.exit", type=int, default=0)
    p.add_argument("--fake.no_save", action="store_true")
    p.add_argument("--fake.degrade", action="store_true")
    return p


def check(args: dict) -> None:
    """What OpenRLHF asserts, or fails on, before its first step."""
    for name in ("actor.model_name_or_path", "reward.model_name_or_path", "data.prompt_dataset"):
        assert args[name], f"--{name} is required"
    gpus = args["actor.num_nodes"] * args["actor.num_gpus_per_node"]
    assert args["vllm.num_engines"] and args["vllm.num_engines"] > 0, "rollouts need vLLM engines (--vllm.num_engines)"
    if args["train.colocate_all"]:
        assert gpus == args["vllm.num_engines"] * args["vllm.tensor_parallel_size"], "colocate_all: GPUs != vLLM GPUs"
        if args["algo.kl.init_coef"] > 0:
            assert (args["ref.num_nodes"], args["ref.num_gpus_per_node"]) == (
                args["actor.num_nodes"], args["actor.num_gpus_per_node"]), "colocated ref and actor layouts differ"
    assert (args["rollout.n_samples_per_prompt"] * args["rollout.batch_size"] // args["rollout.micro_batch_size"]
            >= gpus), "fewer sample batches than actor processes"
    assert args["train.batch_size"] % (args["train.micro_batch_size"] * gpus) == 0, \
        "DeepSpeed: train_batch_size is not micro_batch_per_gpu * gradient_acc_step * world_size"


def read_prompts(args: dict) -> list[list[dict]]:
    """The rows' chats as OpenRLHF's PromptDataset takes them (openrlhf/datasets/prompts_dataset.py): a
    .jsonl file (loaded with datasets' json loader, split "train"), the chat under `--data.input_key`,
    rendered by the chat template when `--data.apply_chat_template` is on. Plain json here, to keep this
    stand-in's start-up cheap; test_openrlhf.py loads and renders the file with datasets and the template."""
    path = args["data.prompt_dataset"]
    assert path.endswith(".jsonl") and "," not in path and "@" not in path, path
    assert args["data.apply_chat_template"], "chat messages need --data.apply_chat_template"
    key = args["data.input_key"]
    chats = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        chat = json.loads(line)[key]
        assert isinstance(chat, list) and chat and chat[-1]["role"] == "user", f"{key}: not a chat ending in a user turn"
        assert all(isinstance(m["content"], str) for m in chat), chat
        chats.append(chat)
    return chats


def save(args: dict) -> None:
    start, output = Path(args["actor.model_name_or_path"]), Path(args["ckpt.output_dir"])
    if args["ds.lora.rank"] > 0:
        save_adapters(start, output, args["ds.lora.rank"], args["ds.lora.alpha"])
    elif args["fake.degrade"]:
        save_degraded(start, output)
    else:
        shutil.copytree(start, output, dirs_exist_ok=True)
    # OpenRLHF's get_tokenizer sets padding_side "left", and save_model writes the tokenizer so.
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (start / name).is_file():
            shutil.copy(start / name, output / name)
    config = json.loads((output / "tokenizer_config.json").read_text())
    (output / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": "left"}, indent=2))


def save_adapters(start: Path, output: Path, rank: int, alpha: int) -> None:
    """What OpenRLHF's strategy.save_model writes for a PeftModel: the adapters, plus the model's config."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(start))
    # init_lora_weights=False: non-zero B, so the "trained" adapters change the weights they touch.
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear",
                                                  lora_dropout=0.0, bias="none", init_lora_weights=False))
    peft_model.save_pretrained(str(output))
    model.config.to_json_file(str(output / "config.json"))


def save_degraded(start: Path, output: Path) -> None:
    """The starting model with the EOS row of its output layer negated: the EOS logit flips sign, so greedy
    decoding stops picking it. numpy only (float32 weights), to keep this path's start-up cheap."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(start, output, dirs_exist_ok=True)
    eos = json.loads((start / "config.json").read_text())["eos_token_id"]
    weights = load_file(str(start / "model.safetensors"))
    head = "lm_head.weight" if "lm_head.weight" in weights else "model.embed_tokens.weight"  # tied: the embeddings
    weights[head][eos] *= -1
    save_file(weights, str(output / "model.safetensors"), metadata={"format": "pt"})


def main(argv: list[str]) -> int:
    args = vars(parser().parse_args(argv))
    print(f"fake OpenRLHF (flags of {OPENRLHF_COMMIT[:12]})", flush=True)
    if args["fake.exit"]:
        print("Traceback (most recent call last):\nRuntimeError: fake engine failure (as asked)", flush=True)
        return args["fake.exit"]
    check(args)
    ckpt = Path(args["ckpt.path"])
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "fake_engine_args.json").write_text(json.dumps(args, indent=1, default=str))  # for the tests
    if args["fake.no_save"]:
        return 0
    prompts = read_prompts(args)
    steps = len(prompts) // args["rollout.batch_size"] * args["train.num_episodes"]
    for step in range(1, steps + 1):  # the line OpenRLHF's PPOTrainer.fit logs after each step
        print(f"✨ Global step {step}: {{'policy_loss': 0.0, 'reward': 0.0, 'kl': 0.0}}", flush=True)
    save(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
