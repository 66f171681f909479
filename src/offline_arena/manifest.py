"""What a run ran on: every installed distribution and its version, the git commit of the code,
hardware, Python, seeds. Two runs' manifests and recipes can be diffed (`arena doctor`) — the answer to
"the same config worked two months ago"."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def collect_manifest(seed: int) -> dict:
    from importlib.metadata import distributions

    packages = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": sys.argv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hardware": _hardware(),
        "git_commit": _git_commit(),
        "seed": seed,
        "env": recorded_environment(),
        "packages": dict(sorted(packages.items())),
    }


RECORDED_ENV_PREFIXES = ("CUDA_VISIBLE", "GLIBC_TUNABLES", "HF_", "LD_PRELOAD", "OMP_NUM", "OFFLINE_ARENA_")
SECRET_MARKERS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")


def recorded_environment() -> dict:
    """The environment variables that change results or speed (devices, threads, the allocator, Hub
    settings, ours), never one that holds a secret: HF_TOKEN and the like are left out by name, whatever
    their prefix."""
    return {k: os.environ[k] for k in sorted(os.environ)
            if k.startswith(RECORDED_ENV_PREFIXES) and not any(m in k.upper() for m in SECRET_MARKERS)}


def _hardware() -> dict:
    info = {"cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def flatten(obj, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are indexed."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(obj, list):
        out = {}
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): obj}


def diff(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(key, value in a, value in b) for every flattened key whose values differ (None = absent)."""
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def doctor_report(run_a: Path, run_b: Path) -> str:
    """What differs between two run folders: packages, code, hardware, recipe."""
    from .run_folder import RunFolder

    lines = []
    folder_a, folder_b = RunFolder(run_a), RunFolder(run_b)
    for title, file_of, skip in (("recipe", lambda f: f.recipe, ()),
                                 ("environment", lambda f: f.manifest, ("created_at", "command"))):
        path_a, path_b = file_of(folder_a), file_of(folder_b)
        missing = [str(p) for p in (path_a, path_b) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"not a run folder (missing {', '.join(missing)})")
        a, b = json.loads(path_a.read_text()), json.loads(path_b.read_text())
        rows = [(k, x, y) for k, x, y in diff(a, b) if k.split(".")[0] not in skip]
        lines.append(f"== {title}: {len(rows)} difference(s)")
        for key, x, y in rows:
            lines.append(f"  {key}: {_show(x)}  ->  {_show(y)}")
    return "\n".join(lines)


def _show(value) -> str:
    return "(absent)" if value is None else json.dumps(value) if not isinstance(value, str) else value
