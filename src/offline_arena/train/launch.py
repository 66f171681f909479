"""A training stage as a launched multi-process job: `accelerate launch` runs the same trainer function
(`train_sft`, `train_dpo`, `train_kto`, `train_reward`, `train_grpo`: `LAUNCHABLE`) on N processes; the
driver waits for it and reads the result back.

The driver writes a job file (trainer kind, model, rows file, out dir, TrainSettings, probe messages) and
runs `accelerate launch ... -m offline_arena.train.launch JOB.json`; each rank reads the job and calls the
trainer, whose TRL Trainer wraps the model in DDP through accelerate. `run_guarded` (train/common.py) lets
only rank 0 run the runaway probes, save the checkpoint and write metrics.json; rank 0 here writes the
result file. No RPC of our own: the job file in, the checkpoint and result file out, on a shared disk.

What the launcher does with `--num_processes N`, read from accelerate 1.15 (commands/launch.py): `--cpu`
goes to `simple_launcher`, which starts *one* process whatever N is (several CPU processes need MPI and a
hostfile); `--multi_gpu` goes to torchrun. So several processes without GPUs are launched as `--multi_gpu`
with `ACCELERATE_USE_CPU=true`, and `PartialState(cpu=True)` then picks MULTI_CPU with gloo.

FSDP2 (`fsdp_version: 2` in the accelerate config file) shards each weight over the ranks: every rank takes
part in gathering the full state dict (`common.trained_model_on_rank0`, `accelerator.get_state_dict`), and
rank 0 loads it into an unsharded copy, which it probes, merges (LoRA) and saves. ZeRO-3 and FSDP1 are
refused (`common.refuse_sharded_model`); so is an FSDP config on CPU processes, where accelerate 1.15 does
not shard but trains DDP (its FSDP branch is for GPUs and other accelerators only). tests/test_launch.py
checks FSDP2 on two CPU processes by setting the distributed type accelerate would set on GPUs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from . import TRAINERS, trainer
from .common import TrainResult, TrainSettings
from .guard import GuardReport, StopTokenGuardError

# The trainers a job may run: every one with the common signature (train/__init__.py).
LAUNCHABLE = TRAINERS

LOG_TAIL_LINES = 40
RU_MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024  # getrusage's unit: bytes on macOS, KiB on Linux
PROGRESS_PREFIX = "train "  # a trainer's progress line (StepProgress: "train {stage}: ...")

logger = logging.getLogger(__name__)
# After SIGTERM, how long the ranks get before SIGKILL: longer than torchrun's own 30 s shutdown (SIGTERM to the
# ranks, SIGKILL after 30 s), so that it closes them in order when it can.
STOP_GRACE_SECONDS = 35


class LaunchError(RuntimeError):
    pass


def check_launchable(kind: str) -> None:
    if kind not in LAUNCHABLE:
        raise ValueError(f"train.launch: the {kind} trainer cannot run as a launched job yet (only "
                         f"{', '.join(LAUNCHABLE)}); drop train.launch to train it in the driver")


def free_port() -> int:
    """A port for rank 0's rendezvous: accelerate's default (29500) would collide with another job on the
    same machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(job_file: Path, processes: int, config_file: str | None = None, gpu: bool | None = None,
                   extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> tuple[list[str], dict]:
    """The `accelerate launch` command line and the environment it runs in (the driver's, with `env` over
    it). With a config file, that file decides the distributed type (DDP, DeepSpeed, FSDP) and its port;
    without one, plain DDP on this machine."""
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
    env = {**os.environ, **(env or {})}
    if config_file:
        cmd += ["--config_file", str(config_file)]
    else:
        # `--mixed_precision no` only quiets the launcher: the TRL config's own bf16 (common.trl_args) wins over it.
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(free_port())]
        if processes > 1:
            cmd += ["--multi_gpu"]  # torchrun: the only way accelerate starts several local processes
        elif not gpu:
            cmd += ["--cpu"]
        if not gpu:
            env["ACCELERATE_USE_CPU"] = "true"  # --cpu and --multi_gpu exclude each other
    cmd += [*extra_args, "-m", "offline_arena.train.launch", str(job_file)]
    # The ranks import this package as the driver does, wherever it was imported from.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    return cmd, env


def train_launched(kind: str, model_path: str | Path, rows: Sequence[dict], out_dir: str | Path,
                   settings: TrainSettings, probe_messages: Sequence[Sequence[dict]] = (), processes: int = 2,
                   config_file: str | None = None, extra_args: Sequence[str] = (),
                   timeout_s: float | None = None, env: dict[str, str] | None = None) -> TrainResult:
    """Run trainer `kind` on `processes` ranks through `accelerate launch`; the checkpoint lands in
    `out_dir/checkpoint` as in-process. The job's files and its log are in `out_dir/launch/`; its training
    progress lines also reach the driver's log, as they would in-process. `env`: variables set for the job's
    processes only (train.launch.env).

    `settings.batch_size` stays per device: the global batch is processes x batch_size x grad_accum.
    Past `timeout_s`, or when the driver is interrupted, the launcher and every process under it are stopped
    (`stop_process_group`), so no rank is left holding a GPU."""
    check_launchable(kind)
    out_dir = Path(out_dir).resolve()
    job_dir = out_dir / "launch"
    job_dir.mkdir(parents=True, exist_ok=True)
    rows_file, job_file, result_file, log_file = (job_dir / n for n in ("rows.jsonl", "job.json", "result.json",
                                                                        "launch.log"))
    rows_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result_file.unlink(missing_ok=True)  # a stale result must not pass for this run's
    job_file.write_text(json.dumps({
        "kind": kind, "model_path": str(model_path), "rows_file": str(rows_file), "out_dir": str(out_dir),
        "result_file": str(result_file), "settings": asdict(settings),
        "probe_messages": [list(m) for m in probe_messages]}, indent=2))
    cmd, full_env = launch_command(job_file, processes, config_file, extra_args=extra_args, env=env)
    with log_file.open("w") as log:
        log.write(" ".join([*(f"{k}={v}" for k, v in sorted((env or {}).items())), *cmd]) + "\n")
        log.flush()
        process = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True, text=True, errors="replace")
        copier = threading.Thread(target=_copy_output, args=(process.stdout, log), daemon=True)
        copier.start()
        try:
            returncode = process.wait(timeout=timeout_s)
            copier.join()
        except subprocess.TimeoutExpired:
            stop_process_group(process)
            copier.join(timeout=10)  # the last lines, for the tail below
            raise LaunchError(f"launched {kind} job ({processes} processes) ran past train.launch.timeout_s "
                              f"({timeout_s:g} s) and was stopped, every rank; full log {log_file}; its end:\n"
                              f"{_log_tail(log_file)}") from None
        except BaseException:  # Ctrl-C or a failure in the driver: the ranks must not outlive it
            stop_process_group(process)
            copier.join(timeout=10)  # before the log file closes under it
            raise
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if "guard_error" in result:
        raise StopTokenGuardError(f"{result['guard_error']} (launched {kind} job; full log {log_file})")
    if returncode != 0 or not result:
        raise LaunchError(f"launched {kind} job ({processes} processes) failed with exit status {returncode}; "
                          f"full log {log_file}; its end:\n{_log_tail(log_file)}")
    return TrainResult(Path(result["checkpoint"]), result["metrics"], GuardReport(**result["guard"]))


def _copy_output(stream, log) -> None:
    """The job's output line by line into its log file; its training progress lines (`train sft: 5/16 steps
    ...`, train/step_progress.py) also to the driver's log, so a launched stage shows its progress as an
    in-process one does, and the rest (the libraries' warnings, every rank's start-up) stays in the file."""
    for line in stream:
        log.write(line)
        log.flush()
        if line.startswith(PROGRESS_PREFIX):
            logger.info(line.rstrip("\n"))


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop the launcher and every process under it. torchrun starts each rank in a session of its own
    (torch 2.13, `SubprocessHandler`), out of reach of a signal to the launcher's group, so the whole tree is
    listed first (psutil, which accelerate requires). SIGTERM to the launcher's group: torchrun passes it to
    the ranks and gives them its own 30 s; after `STOP_GRACE_SECONDS` (or at a second Ctrl-C or SIGTERM)
    SIGKILL to every process of the tree still there: a rank that ignores SIGTERM, or hangs in a collective,
    too. A second signal ends the wait, never the sweep: its exception is raised once the tree is gone."""
    import psutil

    try:
        launcher = psutil.Process(process.pid)
        tree = [launcher, *launcher.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    _signal_group(process.pid, signal.SIGTERM)
    interrupted = None
    try:
        _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_SECONDS)
    except BaseException as error:  # Ctrl-C, or SIGTERM as `arena` raises it (SystemExit): no more waiting
        interrupted, alive = error, tree
    with _signals_held():  # a further signal waits until the sweep is done, rather than cutting it short
        for leftover in alive:
            try:
                tree.extend(leftover.children(recursive=True))  # started while we waited
            except psutil.NoSuchProcess:
                pass
        for leftover in tree:
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                pass
        _signal_group(process.pid, signal.SIGKILL)
        psutil.wait_procs(tree, timeout=10)
        process.wait(timeout=10)
    if interrupted is not None:
        raise interrupted


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM held back (delivered when this ends) in the main thread, where Python runs signal
    handlers; elsewhere they never interrupt this thread anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _log_tail(log_file: Path) -> str:
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])


def run_job(job_file: str | Path) -> TrainResult:
    """One rank's part of a job: the trainer as in-process; rank 0 writes the result file."""
    import torch
    from accelerate import PartialState

    job = json.loads(Path(job_file).read_text())
    # Built first so the trainer's own PartialState (a singleton) agrees: without GPUs `cpu=True` is what
    # makes accelerate see MULTI_CPU (gloo) rather than one process on its own.
    state = PartialState(cpu=not torch.cuda.is_available())
    trainer_fn = trainer(job["kind"])
    rows = [json.loads(line) for line in Path(job["rows_file"]).read_text().splitlines() if line.strip()]
    settings = TrainSettings(**job["settings"])
    try:
        result = trainer_fn(job["model_path"], rows, job["out_dir"], settings, job["probe_messages"])
    except StopTokenGuardError as error:
        # The guard's verdict on the stage, not a crash: the driver raises it again as itself, so a launched
        # stage fails with the one message an in-process stage gives rather than a launcher's traceback.
        if state.is_main_process:
            Path(job["result_file"]).write_text(json.dumps({"guard_error": str(error)}))
        raise
    if state.is_main_process:
        # The most memory rank 0 held, for the stage's metrics: the figure that says whether an allocator
        # setting (train.launch.env) that keeps freed memory in the process fits the machine.
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_BYTES / 2**30
        metrics = {**result.metrics, "launched_peak_rss_gb": round(peak_gb, 2)}
        Path(job["result_file"]).write_text(json.dumps({
            "checkpoint": str(result.checkpoint), "metrics": metrics, "guard": asdict(result.guard),
            "processes": state.num_processes, "distributed_type": str(state.distributed_type)}, indent=2))
    state.wait_for_everyone()  # every rank exits together; a failing rank makes torchrun stop the others
    return result


def main(argv: Sequence[str]) -> None:
    # torchrun's `record` writes a failing rank's traceback to a file that the launcher then prints in its
    # failure summary, the end of the log `train_launched` quotes; without it the summary says only
    # "exitcode 1" and the cause sits somewhere above, interleaved with the other ranks' output.
    from torch.distributed.elastic.multiprocessing.errors import record

    from ..logs import setup_logging

    setup_logging()  # our lines as `arena` writes them, so the driver can pass the progress lines on
    if len(argv) != 1:
        raise SystemExit("usage: accelerate launch -m offline_arena.train.launch JOB.json")
    record(run_job)(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
