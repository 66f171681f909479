"""Training stages as launched jobs (train/launch.py): `accelerate launch` on two CPU processes (gloo) against
today's in-process run on the same data and the same global batch (2 processes x batch 1 vs 1 process x
batch 2, two optimizer steps).

Why the two runs should agree, read from the installed libraries rather than assumed:
- data order: both dataloaders go through `accelerator.prepare`, whose seeded sampler draws the same
  permutation on every rank; with `split_batches=False` rank r takes batches r, r + 2, ... of batch size 1,
  so step k trains on the same two examples as the one-process run's k-th batch of 2;
- loss averaging: SFT's token-mean loss is normalised by the token count gathered over the ranks
  (transformers' `num_items_in_batch`, `average_tokens_across_devices`), and DPO's loss is a mean over pairs,
  so DDP's gradient average over ranks equals the one-process gradient;
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
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from offline_arena.train.common import TrainSettings
from offline_arena.train.launch import LAUNCHABLE, LaunchError, check_launchable, launch_command, train_launched
from test_trainers import PROBES, preference_rows, sft_rows

LEARNING_RATE = 1e-3
STEPS = 2
LOSS_RTOL = 1e-5            # measured: <= ~2e-7
UPDATE_RTOL = 1e-4          # |update(2 processes) - update(1)| / |update(1)|; measured <= ~1.2e-5
PARAM_ATOL = LEARNING_RATE / 10  # largest single weight gap; measured <= ~3.7e-5


def settings(batch_size: int, lora: bool) -> TrainSettings:
    return TrainSettings(learning_rate=LEARNING_RATE, max_steps=STEPS, batch_size=batch_size, max_length=128,
                         probe_prompts=2, probe_max_new_tokens=4, lora=lora, lora_r=4, lora_alpha=8,
                         lora_dropout=0.0)


def state_dict(path) -> dict:
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(str(path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return {name: tensor.float() for name, tensor in model.state_dict().items()}


def norm(tensors: dict) -> torch.Tensor:
    return torch.sqrt(sum((t.double() ** 2).sum() for t in tensors.values()))


def in_process(kind: str):
    from offline_arena.train.dpo import train_dpo
    from offline_arena.train.sft import train_sft

    return {"sft": (train_sft, sft_rows()), "dpo": (train_dpo, preference_rows())}[kind]


# CI runs two of the four (each ~15 s of two launched processes); `pytest -m slow` runs the other two.
@pytest.mark.parametrize("kind,lora", [pytest.param("sft", False, marks=pytest.mark.slow), ("dpo", False), ("sft", True),
                                       pytest.param("dpo", True, marks=pytest.mark.slow)])
def test_two_processes_match_one_process_with_the_same_global_batch(kind, lora, pico_model_dir, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "float32")  # read by both runs; the launcher passes it on
    train, rows = in_process(kind)
    single = train(pico_model_dir, rows, tmp_path / "single", settings(2, lora), PROBES)
    launched = train_launched(kind, pico_model_dir, rows, tmp_path / "launched", settings(1, lora), PROBES,
                              processes=2)

    result = json.loads((tmp_path / "launched" / "launch" / "result.json").read_text())
    assert result["processes"] == 2 and result["distributed_type"] == "DistributedType.MULTI_CPU"
    assert launched.checkpoint == tmp_path / "launched" / "checkpoint"
    assert launched.guard.end_of_turn_in_labels and launched.guard.examples_checked >= 1
    assert launched.guard.runaway_before is not None and launched.guard.runaway_after is not None
    assert launched.metrics["steps"] == single.metrics["steps"] == STEPS
    loss_gap = max(abs(a - b) / abs(b) for a, b in zip(launched.metrics["loss_curve"], single.metrics["loss_curve"]))
    assert loss_gap <= LOSS_RTOL, (launched.metrics["loss_curve"], single.metrics["loss_curve"])

    base, one, two = state_dict(pico_model_dir), state_dict(single.checkpoint), state_dict(launched.checkpoint)
    param_gap = max((one[n] - two[n]).abs().max().item() for n in base)
    moved = max((one[n] - base[n]).abs().max().item() for n in base)
    update_gap = (norm({n: one[n] - two[n] for n in base}) / norm({n: one[n] - base[n] for n in base})).item()
    print(f"{kind} lora={lora}: loss rel gap {loss_gap:.2e}, update rel gap {update_gap:.2e}, "
          f"param gap {param_gap:.2e}, moved {moved:.2e}", file=sys.stderr)
    assert moved > 10 * PARAM_ATOL, "training barely moved the weights: the comparison would prove nothing"
    assert update_gap <= UPDATE_RTOL and param_gap <= PARAM_ATOL
    if lora:
        # The frozen base is saved as stored; only what the adapters wrap ("all-linear": the attention and
        # MLP projections, not the tied embedding / lm_head) may change in the merged checkpoint.
        adapted = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        changed = {n for n in base if not torch.equal(base[n], two[n])}
        assert changed and all(n.endswith(".weight") and n.split(".")[-2] in adapted for n in changed), changed


def test_launch_command_on_cpu(tmp_path):
    """accelerate 1.15's `--cpu` starts one process whatever `--num_processes` says (`simple_launcher`):
    several CPU processes go through torchrun (`--multi_gpu`) with ACCELERATE_USE_CPU."""
    cmd, env = launch_command(tmp_path / "job.json", 2, gpu=False)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cmd and "--cpu" not in cmd
    assert env["ACCELERATE_USE_CPU"] == "true"
    assert cmd[-3:] == ["-m", "offline_arena.train.launch", str(tmp_path / "job.json")]
    cmd, env = launch_command(tmp_path / "job.json", 1, gpu=False)
    assert "--cpu" in cmd and "--multi_gpu" not in cmd
    cmd, env = launch_command(tmp_path / "job.json", 4, config_file="zero2.yaml", gpu=True,
                              extra_args=["--gpu_ids", "0,1,2,3"])
    assert cmd[cmd.index("--config_file") + 1] == "zero2.yaml" and "--multi_gpu" not in cmd
    assert "--main_process_port" not in cmd  # the config file decides the rendezvous
    assert cmd.index("--gpu_ids") < cmd.index("offline_arena.train.launch")


def test_a_failed_job_raises_with_its_log(tmp_path):
    with pytest.raises(LaunchError, match="exit status") as caught:
        train_launched("sft", tmp_path / "no-such-model", sft_rows(), tmp_path / "out", settings(1, False),
                       processes=2)
    assert "no-such-model" in str(caught.value)  # the log's tail names what went wrong
    assert (tmp_path / "out" / "launch" / "launch.log").exists()


def test_only_launchable_kinds_accept_train_launch():
    from pydantic import ValidationError

    from offline_arena.config import Stage
    from offline_arena.stage_kinds import KINDS

    assert {k.name for k in KINDS.values() if k.launchable} == set(LAUNCHABLE)
    assert Stage(kind="dpo", train={"launch": {"processes": 2}}).train.launch.processes == 2
    assert Stage(kind="sft").train.launch is None  # default: in the driver, as before
    with pytest.raises(ValidationError, match="kto stage cannot run its trainer as a launched job"):
        Stage(kind="kto", train={"launch": {"processes": 2}})
    with pytest.raises(ValueError, match="grpo trainer cannot run as a launched job"):
        check_launchable("grpo")


def test_the_pipeline_hands_a_launch_stage_to_the_launcher(monkeypatch, tmp_path):
    from offline_arena.config import Stage
    from offline_arena.stage_kinds import KINDS, TrainJob
    from offline_arena.train import launch
    from offline_arena.train.guard import GuardReport

    calls = []

    def fake(kind, model_path, rows, out_dir, settings, probe, **options):
        calls.append((kind, model_path, options))
        return launch.TrainResult(tmp_path / "checkpoint", {"last_loss": 1.0}, GuardReport(True))

    monkeypatch.setattr(launch, "train_launched", fake)
    stage = Stage(kind="sft", train={"launch": {"processes": 3, "extra_args": ["--gpu_ids", "0,1,2"]}})
    folder = type("Folder", (), {"path": tmp_path})()
    job = TrainJob(stage, "model", [], [], [], folder, TrainSettings(), 0)
    checkpoint, metrics = KINDS["sft"].train(job)
    assert checkpoint == tmp_path / "checkpoint" and metrics["last_loss"] == 1.0
    assert calls == [("sft", "model", {"processes": 3, "config_file": None, "extra_args": ["--gpu_ids", "0,1,2"]})]
