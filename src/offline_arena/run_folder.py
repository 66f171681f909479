"""The run folder, defined once: where each file of a run lives, and how the pipeline writes them.

    RUN/recipe.json, manifest.json      the resolved recipe; the environment (packages, git, hardware)
    RUN/store.sqlite                    every completion, battle and judgment (store.py)
    RUN/summary.json                    the final summary, written when the run ends
    RUN/leaderboard.csv, .json          the latest leaderboard
    RUN/report.html                     the HTML report (report/)
    RUN/mlflow.db                       MLflow's tracking store, when tracking.mlflow is on
    RUN/run.lock                        held by the `arena run` working in the folder (see `RunFolder.lock`)
    RUN/round0/base/eval.json           the base model's evaluation
    RUN/round<r>/<kind>/                one stage: data.jsonl, checkpoint/, metrics.json (rm_ppo:
                                        reward_model/ and ppo/), eval.json, done.json (written last)

The pipeline writes, the report, the CLI and `arena doctor` read; all of them name files through this
module. JSON is written atomically (a temporary file, then a rename), so a reader or a resumed run never
sees half a file.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BASE_FOLDER = ("round0", "base")
# What a trainer leaves in the folder it is given (a stage's, or rm_ppo's reward_model/ and ppo/).
CHECKPOINT = "checkpoint"
METRICS = "metrics.json"


def stage_folder_name(round_index: int, kind: str) -> str:
    """"round1/sft": a stage's folder relative to the run folder."""
    return f"round{round_index}/{kind}"


def stage_model_name(round_index: int, kind: str) -> str:
    """"r1-sft": the name a stage's checkpoint goes by in leaderboards, logs and summaries."""
    return f"r{round_index}-{kind}"


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written file


def read_json(path: Path):
    """A JSON file's content, or None when it is missing or half-written (a run may be writing it now)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class StageFolder:
    """One stage's folder (or the base model's, round 0)."""

    path: Path
    round: int
    kind: str                          # the stage kind, or "base"

    @property
    def name(self) -> str:             # "round1/sft", relative to the run folder
        return stage_folder_name(self.round, self.kind)

    @property
    def done(self) -> Path:            # the stage's summary, its very last write: present = finished
        return self.path / "done.json"

    @property
    def eval(self) -> Path:
        return self.path / "eval.json"

    @property
    def data(self) -> Path:
        return self.path / "data.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def reward_model(self) -> Path:    # rm_ppo: the reward model's training folder
        return self.path / "reward_model"

    @property
    def ppo(self) -> Path:             # rm_ppo: PPO's training folder
        return self.path / "ppo"

    def metrics_files(self) -> list[tuple[str, Path]]:
        """(part, metrics.json) of each trainer that ran here: the stage's own, and rm_ppo's two halves."""
        return [("", self.path / METRICS), ("reward model", self.reward_model / METRICS), ("ppo", self.ppo / METRICS)]


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    recipe = property(lambda self: self.root / "recipe.json")
    manifest = property(lambda self: self.root / "manifest.json")
    store = property(lambda self: self.root / "store.sqlite")
    summary = property(lambda self: self.root / "summary.json")
    report = property(lambda self: self.root / "report.html")
    leaderboard_json = property(lambda self: self.root / "leaderboard.json")
    mlflow_db = property(lambda self: self.root / "mlflow.db")

    @property
    def base(self) -> StageFolder:
        return StageFolder(self.root.joinpath(*BASE_FOLDER), 0, BASE_FOLDER[1])

    def stage(self, round_index: int, kind: str) -> StageFolder:
        return StageFolder(self.root / stage_folder_name(round_index, kind), round_index, kind)

    def stage_folders(self) -> list[StageFolder]:
        """The stage folders that exist now (base included), in no particular order."""
        found = []
        for folder in self.root.glob("round*/*"):
            match = re.fullmatch(r"round(\d+)", folder.parent.name)
            if match and folder.is_dir():
                found.append(StageFolder(folder, int(match.group(1)), folder.name))
        return found

    def is_run(self) -> bool:
        return self.store.is_file() or self.recipe.is_file()

    @contextmanager
    def lock(self):
        """Hold the folder for one run: a second `arena run` on it fails at once, naming the first. The
        lock is the kernel's (flock), so it dies with its process: a run killed by anything, SIGKILL
        included, leaves a run.lock file behind but never a lock that blocks the next run."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / "run.lock", "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderBusy(f"{self.root} is in use by another arena run ({holder}); wait for it to end, or "
                                "use another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)[:200]}\n")
        handle.flush()
        try:
            yield self
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


class RunFolderBusy(RuntimeError):
    pass
