"""Training stages as launched jobs (train/launch.py): `accelerate launch` on two CPU processes (gloo) against
today's in-process run on the same data and the same global batch (2 processes x batch 1 vs 1 process x
batch 2, KTO 2 x 2 vs 1 x 4; two optimizer steps). GRPO is launched but not compared (see its test).

Why the two runs should agree, read from the installed libraries rather than assumed:
- data order: both dataloaders go through `accelerator.prepare`, whose seeded sampler draws the same
  permutation on every rank; with `split_batches=False` rank r takes batches r, r + 2, ... of batch size 1,
  so step k trains on the same two examples as the one-process run's k-th batch of 2;
- loss averaging: SFT's token-mean loss is normalised by the token count gathered over the ranks
  (transformers' `num_items_in_batch`, `average_tokens_across_devices`); DPO's and the reward model's losses
  are means over pairs, KTO's a mean over examples (its KL reference point a mean over the ranks, see
  `kto_rows_with_batch_independent_kl`); so DDP's gradient average over ranks equals the one-process gradient;
- what still differs is rounding: the one-process batch pads the shorter example (masked, but it changes
  the shapes of the matmuls) and the ranks' gradients are summed by an all-reduce in another order.

So the comparison runs in float32 (OFFLINE_ARENA_DTYPE), where rounding is the only difference. Measured on
this machine (2 steps, AdamW, lr 1e-3): loss curves equal to ~1e-7 relative; the runs' weight updates
(checkpoint minus start) differ by ~1e-6 to ~1e-5 in relative L2 norm; the largest single weight gap is
~3.7e-5 (DPO), while training moves every weight by ~1.5e-3. Adam is why the elementwise gap is the loose
one: it divides a gradient by its own running scale, so where a gradient is near zero a rounding-level
difference becomes a visible part of a step. Hence two tolerances: the update's relative norm (tight, 1e-4)
and no single weight off by more than a tenth of one step (lr / 10).

Under bf16 autocast (the default on GPUs and on CPUs with fast bf16, like this one) the comparison is not
tight, nor should it be: the step-2 SFT losses differ by ~2.5e-5 relative, and Adam turns a bf16 rounding
difference in a near-zero gradient into a whole lr-sized step of the other sign, so ~0.05% of the weights
differ by up to 2 x lr (the mean gap stays ~1e-6).
LoRA dropout is 0: its masks depend on the batch's shape.

FSDP2 on the same two gloo ranks (the model sharded, gathered before saving) gives the same gaps as DDP, to
the last digit printed: with two ranks a reduce-scatter sums the same two gradients an all-reduce does, and
Adam works elementwise on each shard.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from offline_arena.train.common import TrainSettings
from offline_arena.train.guard import StopTokenGuardError
from offline_arena.train import launch as launch_module
from offline_arena.train.launch import (LAUNCHABLE, LaunchError, check_launchable, free_port, launch_command,
                                        stop_process_group, train_launched)
from test_trainers import (BAD, GOOD, PROBES, QUESTIONS, assistant, preference_rows, rows_cut_before_their_end,
                           sft_rows, user)

LEARNING_RATE = 1e-3
STEPS = 2
LOSS_RTOL = 1e-5            # measured: <= ~2e-7
UPDATE_RTOL = 1e-4          # |update(2 processes) - update(1)| / |update(1)|; measured <= ~4.5e-5 (reward, LoRA)
PARAM_ATOL = LEARNING_RATE / 10  # largest single weight gap; measured <= ~3.7e-5
SCORE_RTOL = 1e-3           # reward model: |score(2 processes) - score(1)| / how far training moved them; measured ~1e-5
# What LoRA ("all-linear": the attention and MLP projections, not the tied embedding / lm_head) may change in a
# merged checkpoint; a reward model's score head is trained whole (PEFT's modules_to_save for SEQ_CLS).
ADAPTED = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "score")


def settings(batch_size: int, lora: bool, **extra) -> TrainSettings:
    return TrainSettings(learning_rate=LEARNING_RATE, max_steps=STEPS, batch_size=batch_size, max_length=128,
                         probe_prompts=2, probe_max_new_tokens=4, lora=lora, lora_r=4, lora_alpha=8,
                         lora_dropout=0.0, extra=extra)


def state_dict(path, model_class: str = "AutoModelForCausalLM") -> dict:
    import transformers

    model, info = getattr(transformers, model_class).from_pretrained(str(path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return {name: tensor.float() for name, tensor in model.state_dict().items()}


def norm(tensors: dict) -> torch.Tensor:
    return torch.sqrt(sum((t.double() ** 2).sum() for t in tensors.values()))


def kto_rows_with_batch_independent_kl() -> list[dict]:
    """KTO's reference point z_0 is the mean log-ratio of mismatched (prompt, completion) pairs, made by rotating
    the completions by one within each batch of `per_device_train_batch_size` rows (TRL 1.16,
    `add_kl_completion_ids`). A global batch [a, b, c, d] is rotated as one batch in one process and as [a, b],
    [c, d] on two: the pairs are {(a, d), (b, a), (c, b), (d, c)} against {(a, b), (b, a), (c, d), (d, c)}
    (prompt, completion), the same set exactly when a and c share a prompt (as b and d do here). In this order
    both runs estimate the same z_0 (measured at step 2: 0.3086 in both; in `test_trainers.kto_rows`'s order
    0.3068 in one process, 0.3116 on two), and each rank gets a desirable and an undesirable answer. The
    tolerances would not catch the other order (z_0 enters from step 2 on, scaled by beta = 0.1, and Adam
    normalises the gradient's scale away): the order makes the runs compute the same thing, as the claim is."""
    rows = []
    for (q1, q2), (g1, g2), (b1, b2) in zip(zip(QUESTIONS[::2], QUESTIONS[1::2]), zip(GOOD[::2], GOOD[1::2]),
                                            zip(BAD[::2], BAD[1::2])):
        rows += [{"prompt": user(q1), "completion": assistant(g1), "label": True},
                 {"prompt": user(q2), "completion": assistant(b2), "label": False},
                 {"prompt": user(q1), "completion": assistant(b1), "label": False},
                 {"prompt": user(q2), "completion": assistant(g2), "label": True}]
    return rows


def in_process(kind: str):
    """(trainer, rows, the checkpoint's model class, batch size per process of the two-process run; the
    one-process run takes twice that). KTO needs two rows per process for its KL estimate."""
    from offline_arena.train.dpo import train_dpo
    from offline_arena.train.kto import train_kto
    from offline_arena.train.reward import train_reward
    from offline_arena.train.sft import train_sft

    return {"sft": (train_sft, sft_rows(), "AutoModelForCausalLM", 1),
            "dpo": (train_dpo, preference_rows(), "AutoModelForCausalLM", 1),
            "kto": (train_kto, kto_rows_with_batch_independent_kl(), "AutoModelForCausalLM", 2),
            "reward": (train_reward, preference_rows(), "AutoModelForSequenceClassification", 1)}[kind]


def starting_reward_model(model_dir):
    """The reward model training started from: the LM's body and a new score head drawn under the trainer's
    seed, rebuilt as `train_reward` builds it."""
    from transformers import set_seed

    from offline_arena.train.reward import load_reward_model

    set_seed(settings(1, False).seed)
    return load_reward_model(model_dir)[0]


def starting_weights(kind: str, model_dir) -> dict:
    if kind != "reward":
        return state_dict(model_dir)
    return {name: tensor.float() for name, tensor in starting_reward_model(model_dir).state_dict().items()}


def reward_scores(model, tokenizer) -> torch.Tensor:
    """A reward model's scores of every chosen and rejected conversation, each scored alone (no padding)."""
    texts = [tokenizer.apply_chat_template([*row["prompt"], *row[side]], tokenize=False)
             for row in preference_rows() for side in ("chosen", "rejected")]
    with torch.no_grad():
        return torch.stack([model.eval()(**tokenizer(text, return_tensors="pt")).logits[0, 0] for text in texts])


def saved_reward_scores(checkpoint) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return reward_scores(AutoModelForSequenceClassification.from_pretrained(str(checkpoint)),
                         AutoTokenizer.from_pretrained(str(checkpoint)))


# CI runs one comparison per kind (each ~8 s of two launched processes on 2 cores); `pytest -m slow` the others.
@pytest.mark.parametrize("kind,lora", [pytest.param("sft", False, marks=pytest.mark.slow), ("dpo", False), ("sft", True),
                                       pytest.param("dpo", True, marks=pytest.mark.slow),
                                       ("kto", False), pytest.param("kto", True, marks=pytest.mark.slow),
                                       pytest.param("reward", False, marks=pytest.mark.slow), ("reward", True)])
def test_two_processes_match_one_process_with_the_same_global_batch(kind, lora, pico_model_dir, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "float32")  # read by both runs; the launcher passes it on
    assert_launched_matches_one_process(kind, lora, pico_model_dir, tmp_path, "MULTI_CPU")


def assert_launched_matches_one_process(kind: str, lora: bool, pico_model_dir, tmp_path, distributed_type: str,
                                        config_file=None):
    """Train `kind` in this process (batch 2 x per_process) and launched on two (per_process each), then
    compare the loss curves, the saved weights (and a reward model's scores)."""
    train, rows, model_class, per_process = in_process(kind)
    single = train(pico_model_dir, rows, tmp_path / "single", settings(2 * per_process, lora), PROBES)
    launched = train_launched(kind, pico_model_dir, rows, tmp_path / "launched", settings(per_process, lora),
                              PROBES, processes=2, config_file=config_file)

    result = json.loads((tmp_path / "launched" / "launch" / "result.json").read_text())
    assert result["processes"] == 2 and result["distributed_type"] == f"DistributedType.{distributed_type}"
    assert launched.checkpoint == tmp_path / "launched" / "checkpoint"
    assert launched.guard.end_of_turn_in_labels and launched.guard.examples_checked >= 1
    if kind != "reward":  # a reward model does not generate: no runaway probes
        assert launched.guard.runaway_before is not None and launched.guard.runaway_after is not None
    assert launched.metrics["steps"] == single.metrics["steps"] == STEPS
    loss_gap = max(abs(a - b) / abs(b) for a, b in zip(launched.metrics["loss_curve"], single.metrics["loss_curve"]))
    assert loss_gap <= LOSS_RTOL, (launched.metrics["loss_curve"], single.metrics["loss_curve"])

    base = starting_weights(kind, pico_model_dir)
    one, two = state_dict(single.checkpoint, model_class), state_dict(launched.checkpoint, model_class)
    assert one.keys() == two.keys() == base.keys()
    param_gap = max((one[n] - two[n]).abs().max().item() for n in base)
    moved = max((one[n] - base[n]).abs().max().item() for n in base)
    update_gap = (norm({n: one[n] - two[n] for n in base}) / norm({n: one[n] - base[n] for n in base})).item()
    print(f"{kind} lora={lora}: loss rel gap {loss_gap:.2e}, update rel gap {update_gap:.2e}, "
          f"param gap {param_gap:.2e}, moved {moved:.2e}", file=sys.stderr)
    assert moved > 10 * PARAM_ATOL, "training barely moved the weights: the comparison would prove nothing"
    assert update_gap <= UPDATE_RTOL and param_gap <= PARAM_ATOL
    if lora:
        # The frozen base is saved as stored; only what the adapters wrap may change in the merged checkpoint.
        changed = {n for n in base if not torch.equal(base[n], two[n])}
        assert changed and all(n.endswith(".weight") and n.split(".")[-2] in ADAPTED for n in changed), changed
    if kind == "reward":
        # The saved reward models score alike: what the next stage (PPO) reads from them.
        from transformers import AutoTokenizer

        scores_one, scores_two = saved_reward_scores(single.checkpoint), saved_reward_scores(launched.checkpoint)
        start = reward_scores(starting_reward_model(pico_model_dir), AutoTokenizer.from_pretrained(str(pico_model_dir)))
        score_moved = (scores_one - start).abs().max().item()
        score_gap = (scores_one - scores_two).abs().max().item()
        print(f"reward lora={lora}: score gap {score_gap:.2e}, scores moved {score_moved:.2e}", file=sys.stderr)
        assert score_gap <= SCORE_RTOL * score_moved, (scores_one, scores_two)


FSDP_ON_CPU = Path(__file__).parent / "fsdp_on_cpu"  # its sitecustomize lets accelerate shard CPU processes


def fsdp2_config(path: Path) -> Path:
    """An accelerate config for FSDP2 as TRL ships it (examples/accelerate_configs/fsdp2.yaml), for two CPU
    processes in float32 on a port of its own."""
    path.write_text(f"""compute_environment: LOCAL_MACHINE
distributed_type: FSDP
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_cpu_ram_efficient_loading: true
  fsdp_offload_params: false
  fsdp_reshard_after_forward: true
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_activation_checkpointing: false
mixed_precision: 'no'
machine_rank: 0
num_machines: 1
num_processes: 2
main_process_port: {free_port()}
rdzv_backend: static
same_network: true
use_cpu: true
""")
    return path


# CI runs full fine-tuning and LoRA (~8 s each); `pytest -m slow` the others.
@pytest.mark.parametrize("kind,lora", [("sft", False), ("sft", True), pytest.param("dpo", False, marks=pytest.mark.slow),
                                       pytest.param("reward", True, marks=pytest.mark.slow)])
def test_two_fsdp_processes_on_cpu_give_the_same_parameters_as_one_process(kind, lora, pico_model_dir, tmp_path,
                                                                         monkeypatch):
    """FSDP2 shards every weight over the two ranks; rank 0 saves what `trained_model_on_rank0` gathered (LoRA
    merged after gathering). accelerate 1.15 shards only on GPUs, so the launched ranks import
    tests/fsdp_on_cpu/sitecustomize.py, which sets the distributed type accelerate would set there."""
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "float32")
    monkeypatch.setenv("OFFLINE_ARENA_TEST_FSDP_ON_CPU", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FSDP_ON_CPU), *filter(None, [os.environ.get("PYTHONPATH")])]))
    assert_launched_matches_one_process(kind, lora, pico_model_dir, tmp_path, "FSDP",
                                        config_file=fsdp2_config(tmp_path / "fsdp2.yaml"))


def test_an_fsdp_config_on_cpu_is_refused_rather_than_run_as_ddp(pico_model_dir, tmp_path, monkeypatch):
    """Without that help accelerate 1.15 drops the FSDP plugin on CPU processes and trains DDP, every rank
    holding the whole model: not what the config asked for, so the job says so."""
    with pytest.raises(LaunchError, match="accelerate shards with FSDP on GPUs only"):
        train_launched("sft", pico_model_dir, sft_rows(), tmp_path, settings(1, False), processes=2,
                       config_file=fsdp2_config(tmp_path / "fsdp2.yaml"))


def test_two_processes_train_grpo(pico_model_dir, tmp_path, monkeypatch):
    """GRPO launched on two processes trains and saves as in-process, but is not compared with one process:
    TRL 1.16 seeds every rank differently (`set_seed(args.seed, device_specific=True)` in GRPOTrainer), so the
    two ranks sample other answers than one process would, and the rewards, advantages and updates differ by
    more than rounding. What is checked: the job ran on two gloo ranks with the stage's default reward
    functions (the verifier and the stop penalty; a job file carries no callables), every step logged a finite
    loss, the probes ran, and the checkpoint loads with every weight and moved."""
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "float32")
    # The pico model's random 6-token answers meet "fewer than 4 words" about half the time (measured: 6 of 16
    # samples), which gives the groups the reward spread GRPO learns from; the stop penalty is -1 for all of them.
    fewer_than_4_words = [{"id": "length_constraints:number_words", "params": {"relation": "less than", "num_words": 4}}]
    rows = [{"prompt": user(q), "constraints": fewer_than_4_words, "prompt_id": f"p{i}"} for i, q in enumerate(QUESTIONS)]
    # 2 processes x 4 answers per step = two groups of 4 answers, whose rewards are gathered across the ranks.
    launched = train_launched("grpo", pico_model_dir, rows, tmp_path, settings(4, False, num_generations=4,
                                                                                max_completion_length=6),
                              PROBES, processes=2)

    result = json.loads((tmp_path / "launch" / "result.json").read_text())
    assert result["processes"] == 2 and result["distributed_type"] == "DistributedType.MULTI_CPU"
    assert launched.metrics["steps"] == STEPS
    assert launched.guard.end_of_turn_in_labels and launched.guard.runaway_after is not None
    base, trained = state_dict(pico_model_dir), state_dict(launched.checkpoint)
    moved = max((trained[n] - base[n]).abs().max().item() for n in base)
    print(f"grpo: loss curve {launched.metrics['loss_curve']}, moved {moved:.2e}", file=sys.stderr)
    # Measured 3.7e-4: only one of the two steps drew a group with a reward spread, at the decayed lr 5e-4.
    assert moved > LEARNING_RATE / 10, "GRPO did not move the weights: its groups had no reward spread"


def test_launch_command_on_cpu(tmp_path):
    """accelerate 1.15's `--cpu` starts one process whatever `--num_processes` says (`simple_launcher`):
    several CPU processes go through torchrun (`--multi_gpu`) with ACCELERATE_USE_CPU."""
    cmd, env = launch_command(tmp_path / "job.json", 2, gpu=False)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cmd and "--cpu" not in cmd
    assert env["ACCELERATE_USE_CPU"] == "true"
    assert cmd[-3:] == ["-m", "offline_arena.train.launch", str(tmp_path / "job.json")]
    cmd, env = launch_command(tmp_path / "job.json", 1, gpu=False, env={"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1"})
    assert "--cpu" in cmd and "--multi_gpu" not in cmd
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.mmap_threshold=1" and env["PATH"] == os.environ["PATH"]
    cmd, env = launch_command(tmp_path / "job.json", 4, config_file="zero2.yaml", gpu=True,
                              extra_args=["--gpu_ids", "0,1,2,3"])
    assert cmd[cmd.index("--config_file") + 1] == "zero2.yaml" and "--multi_gpu" not in cmd
    assert "--main_process_port" not in cmd  # the config file decides the rendezvous
    assert cmd.index("--gpu_ids") < cmd.index("offline_arena.train.launch")


def test_a_launched_job_shows_its_progress_in_the_driver_and_reports_its_peak_memory(pico_model_dir, tmp_path,
                                                                                     caplog):
    """The quickstart launches SFT and DPO (one process each, its allocator tuned through train.launch.env):
    the stage's progress line must still reach the driver's log, the job's other output stays in its file,
    and rank 0 reports the most memory it held."""
    import logging

    caplog.set_level(logging.INFO, logger="offline_arena.train.launch")
    heap = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"
    result = train_launched("sft", pico_model_dir, sft_rows(), tmp_path / "out", settings(2, False), processes=1,
                            env={"GLIBC_TUNABLES": heap})
    relayed = [r.getMessage() for r in caplog.records if r.name == "offline_arena.train.launch"]
    assert any(line.startswith(f"train sft: {STEPS}/{STEPS} steps") for line in relayed), relayed
    assert all(line.startswith("train ") for line in relayed)
    log = (tmp_path / "out" / "launch" / "launch.log").read_text()
    assert log.startswith(f"GLIBC_TUNABLES={heap} ") and f"train sft: {STEPS}/{STEPS} steps" in log
    assert 0.1 < result.metrics["launched_peak_rss_gb"] < 16
    assert (result.checkpoint / "config.json").is_file()


def test_a_failed_job_raises_with_its_log(tmp_path):
    with pytest.raises(LaunchError, match="exit status") as caught:
        train_launched("sft", tmp_path / "no-such-model", sft_rows(), tmp_path / "out", settings(1, False),
                       processes=2)
    assert "no-such-model" in str(caught.value)  # the log's tail names what went wrong
    assert (tmp_path / "out" / "launch" / "launch.log").exists()


def test_a_launched_stage_the_guard_stops_fails_with_the_guards_message(pico_model_dir, tmp_path):
    """A guard verdict in a launched job (here: max_length cuts every answer before its end-of-turn) reaches
    the driver as the guard's own error and message, as an in-process stage's would, not as a traceback."""
    rows, max_length = rows_cut_before_their_end(pico_model_dir)
    with pytest.raises(StopTokenGuardError, match="missing from the rendered example's trained span") as caught:
        train_launched("dpo", pico_model_dir, rows, tmp_path / "out",
                       dataclasses.replace(settings(1, False), max_length=max_length), processes=1)
    assert "Traceback" not in str(caught.value) and "launched dpo job" in str(caught.value)


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line contains `text` (zombies left out: they hold nothing)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or text not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def start_stand_in_job(base: int):
    """A stand-in launched job: children in sessions of their own (as torchrun starts its ranks), one of them
    ignoring SIGTERM; returns the launcher and the marker its processes' command lines hold."""
    import subprocess
    import time

    marker = str(base + os.getpid() % 99_999)  # a sleep no other process here runs
    job = f"setsid sleep {marker} & setsid bash -c 'trap \"\" TERM; sleep {marker}' & sleep {marker} & wait"
    process = subprocess.Popen(["bash", "-c", job], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(processes_naming(marker)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(processes_naming(marker)) >= 4, "the stand-in job did not start its children"
    return process, marker


def test_stopping_a_job_stops_every_process_under_it(monkeypatch):
    """What a timeout or Ctrl-C in the driver does to a launched job: the launcher and every process under
    it go, also those in sessions of their own (torchrun starts each rank so) and one that ignores SIGTERM
    (SIGKILL after the grace period)."""
    import time

    monkeypatch.setattr(launch_module, "STOP_GRACE_SECONDS", 2)
    process, marker = start_stand_in_job(900_000)
    started = time.monotonic()
    stop_process_group(process)
    assert process.poll() is not None and processes_naming(marker) == []
    assert time.monotonic() - started >= 2  # the child that ignores SIGTERM needed the SIGKILL


@pytest.mark.parametrize("second", ["SIGTERM", "SIGINT"])
def test_a_second_signal_in_the_grace_period_still_kills_every_process(second, monkeypatch):
    """A second SIGTERM (which `arena` turns into SystemExit, cli.py) or Ctrl-C while the ranks get their grace
    period: no more waiting, but every process of the tree still gets its SIGKILL, and the signal's exception
    goes on up once they are gone."""
    import signal
    import threading
    import time

    monkeypatch.setattr(launch_module, "STOP_GRACE_SECONDS", 60)
    process, marker = start_stand_in_job(800_000)

    def as_the_cli_does(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, as_the_cli_does)
    # Ctrl-C as Python sets it up (KeyboardInterrupt), whatever an earlier test of the session left installed.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), getattr(signal, second)))  # well inside the 60 s grace
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(SystemExit if second == "SIGTERM" else KeyboardInterrupt):
            stop_process_group(process)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        left = processes_naming(marker)
        for pid in left:  # so that a failure here leaves nothing running
            os.kill(pid, signal.SIGKILL)
    assert left == [] and process.poll() is not None
    assert time.monotonic() - started < 30  # the second signal ended the wait, not the grace period


@pytest.mark.slow
def test_a_job_past_its_timeout_is_stopped_every_rank(pico_model_dir, tmp_path):
    """A launched SFT job that would train for hours, given 20 s: the driver raises, and neither the launcher
    nor either rank is left running."""
    import dataclasses
    import threading
    import time

    job_file = str(tmp_path / "out" / "launch" / "job.json")
    errors, seen = [], []

    def run():
        try:
            train_launched("sft", pico_model_dir, sft_rows() * 50, tmp_path / "out",
                           dataclasses.replace(settings(1, False), max_steps=100_000), processes=2, timeout_s=20)
        except LaunchError as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    while thread.is_alive():
        seen.append(len(processes_naming(job_file)))
        time.sleep(0.5)
    assert max(seen) >= 3, f"the launcher and both ranks were never all up: {seen}"  # the launcher + 2 ranks
    assert errors and "ran past train.launch.timeout_s (20 s)" in str(errors[0])
    assert processes_naming(job_file) == []


@pytest.mark.slow
@pytest.mark.ci  # 9 s: the one end-to-end check that a pre-empted driver leaves no rank
def test_sigterm_to_the_driver_stops_its_launched_ranks(pico_model_dir, pico_reward_dir, tmp_path):
    """A scheduler pre-empts `arena run` with SIGTERM while a launched SFT stage trains: the driver unwinds
    (exit status 143, a line saying how to resume), and neither the launcher nor a rank outlives it."""
    import signal
    import subprocess
    import time

    import yaml

    recipe = tmp_path / "launched.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "t", "target": str(pico_model_dir), "judge": f"rm:{pico_reward_dir}",
        "opponents": [{"name": "o", "model": f"{pico_model_dir}@best-of-2"}],
        "prompts": {"per_stage": 8, "heldout": 4}, "generation": {"max_new_tokens": 8, "batch_size": 8},
        "evaluation": {"bootstrap_rounds": 10, "leaderboard": False},
        "stages": [{"kind": "sft", "min_rows": 1, "data": {"require_stopped": False, "require_passing": False},
                    "train": {"max_steps": 100_000, "batch_size": 1, "max_length": 128, "runaway_tolerance": 1.0,
                              "launch": {"processes": 2}}}]}))
    run_dir = tmp_path / "run"
    job_file = str(run_dir / "round1" / "sft" / "launch" / "job.json")
    driver = subprocess.Popen([sys.executable, "-m", "offline_arena.cli", "run", str(recipe), "--run-dir", str(run_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(processes_naming(job_file)) < 3 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.5)
    assert len(processes_naming(job_file)) >= 3, "the launched job never had its launcher and two ranks up"
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 143 and "stopped by SIGTERM" in stderr, stderr[-2000:]
    assert processes_naming(job_file) == []


def test_only_launchable_kinds_accept_train_launch():
    from pydantic import ValidationError

    from offline_arena.config import Stage
    from offline_arena.stage_kinds import KINDS

    # rm_ppo launches its reward model's trainer (`stage.train` is the reward model's); PPO runs as before.
    launched_trainers = {"reward" if k.name == "rm_ppo" else k.name for k in KINDS.values() if k.launchable}
    assert launched_trainers == set(LAUNCHABLE) == {"sft", "dpo", "kto", "reward", "grpo"}
    assert Stage(kind="kto", train={"launch": {"processes": 2}}).train.launch.processes == 2
    assert Stage(kind="sft").train.launch is None  # default: in the driver, as before
    with pytest.raises(ValidationError, match="distill stage cannot run its trainer as a launched job"):
        Stage(kind="distill", teacher="HuggingFaceTB/SmolLM2-360M-Instruct", train={"launch": {"processes": 2}})
    with pytest.raises(ValueError, match="distill trainer cannot run as a launched job"):
        check_launchable("distill")


def test_the_pipeline_hands_a_launch_stage_to_the_launcher(monkeypatch, tmp_path):
    from offline_arena.config import Stage
    from offline_arena.pipeline.stage_runners import RUNNERS, TrainJob
    from offline_arena.train import launch
    from offline_arena.train.guard import GuardReport

    calls = []

    def fake(kind, model_path, rows, out_dir, settings, probe, **options):
        calls.append((kind, model_path, options))
        return launch.TrainResult(tmp_path / "checkpoint", {"last_loss": 1.0}, GuardReport(True))

    monkeypatch.setattr(launch, "train_launched", fake)
    stage = Stage(kind="sft", train={"launch": {"processes": 3, "extra_args": ["--gpu_ids", "0,1,2"],
                                                "timeout_s": 3600}})
    folder = type("Folder", (), {"path": tmp_path})()
    job = TrainJob(stage, "model", [], [], [], folder, TrainSettings(), 0)
    checkpoint, metrics = RUNNERS["sft"].train(job)
    assert checkpoint == tmp_path / "checkpoint" and metrics["last_loss"] == 1.0
    assert calls == [("sft", "model", {"processes": 3, "config_file": None, "extra_args": ["--gpu_ids", "0,1,2"],
                                       "timeout_s": 3600, "env": {}})]


def test_a_run_resumes_with_another_launch_timeout_but_not_another_launch(tmp_path):
    """How long a launched stage may take is not what it computes; how many processes train it is (the
    global batch)."""
    from offline_arena.config import Recipe, load_recipe
    from offline_arena.pipeline.loop import save_recipe
    from offline_arena.run_folder import RunFolder

    quickstart = load_recipe(Path(__file__).parents[1] / "recipes" / "quickstart.yaml").model_dump(mode="json")
    assert quickstart["stages"][0]["kind"] == "sft"

    def recipe(**launch):
        quickstart["stages"][0]["train"]["launch"] = launch
        return Recipe.model_validate(quickstart)

    save_recipe(recipe(processes=2, timeout_s=600), RunFolder(tmp_path))
    save_recipe(recipe(processes=2, timeout_s=7200), RunFolder(tmp_path))  # not refused
    save_recipe(recipe(processes=2), RunFolder(tmp_path))
    with pytest.raises(ValueError, match="different recipe"):
        save_recipe(recipe(processes=4, timeout_s=600), RunFolder(tmp_path))


def test_an_rm_ppo_stage_launches_its_reward_model(monkeypatch, tmp_path):
    """`stage.train` is rm_ppo's reward model's, so `train.launch` launches that trainer, into the stage's
    reward_model/ folder and without probes (a reward model does not generate)."""
    from offline_arena.config import Stage
    from offline_arena.run_folder import StageFolder
    from offline_arena.pipeline.stage_runners import TrainJob, _train_reward_model
    from offline_arena.train import launch
    from offline_arena.train.guard import GuardReport

    calls = []

    def fake(kind, model_path, rows, out_dir, settings, probe, **options):
        calls.append((kind, out_dir, probe, options["processes"]))
        return launch.TrainResult(out_dir / "checkpoint", {"last_loss": 1.0}, GuardReport(True))

    monkeypatch.setattr(launch, "train_launched", fake)
    stage = Stage(kind="rm_ppo", train={"launch": {"processes": 2}})
    folder = StageFolder(tmp_path, 1, "rm_ppo")
    job = TrainJob(stage, "model", [], [], [[{"role": "user", "content": "hi"}]], folder, TrainSettings(), 0)
    assert _train_reward_model(job).checkpoint == folder.reward_model / "checkpoint"
    assert calls == [("reward", folder.reward_model, [], 2)]
