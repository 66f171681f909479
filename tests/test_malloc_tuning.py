"""The `arena` console script relaunches itself once with glibc's malloc tuned (malloc_tuning.py): a real
exec of a real Python, and the cases where it must leave the process alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from offline_arena.malloc_tuning import SWITCH, TUNABLES, tuned_environment

SHOW = "import os; print(os.environ.get('GLIBC_TUNABLES'), os.environ.get('OFFLINE_ARENA_MALLOC'))"


def relaunched_output(extra_env: dict, clean_env: dict) -> str:
    """Run a Python that calls the relaunch with a script printing the environment it ends up in; if it does
    not relaunch, the caller prints "not relaunched"."""
    code = ("import sys\nfrom offline_arena.malloc_tuning import relaunch_with_tuned_malloc\n"
            f"relaunch_with_tuned_malloc(['-c', {SHOW!r}])\nprint('not relaunched')")
    env = {k: v for k, v in clean_env.items() if k not in ("GLIBC_TUNABLES", SWITCH, "LD_PRELOAD")}
    return subprocess.run([sys.executable, "-c", code], env={**env, **extra_env}, capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


@pytest.mark.skipif(tuned_environment({}) is None, reason="glibc's tunables exist only on Linux with glibc")
def test_relaunch_sets_the_tunables_once_and_respects_the_users_choice():
    import os

    environ = dict(os.environ)
    assert relaunched_output({}, environ) == f"{TUNABLES} tuned"
    # the user's own tunables are kept beside ours; their malloc settings, or an allocator, win outright
    assert relaunched_output({"GLIBC_TUNABLES": "glibc.rtld.nns=8"}, environ) == f"glibc.rtld.nns=8:{TUNABLES} tuned"
    assert relaunched_output({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, environ) == "not relaunched"
    assert relaunched_output({SWITCH: "system"}, environ) == "not relaunched"
    assert relaunched_output({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, environ) == "not relaunched"


def test_no_relaunch_off_glibc_or_once_tuned():
    assert tuned_environment({}, libc="") is None  # musl, macOS, Windows
    assert tuned_environment({SWITCH: "tuned"}, libc="glibc") is None  # the relaunched process itself
