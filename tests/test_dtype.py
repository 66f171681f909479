"""The compute dtype (models/dtype.py): what a GPU gets without one to run on (the decision is a pure function
of what torch reports, and `compute_dtype` is checked with torch's answers stood in), that answers of different
dtypes never share store keys, and that processes started together on a cold cache agree on the CPU's dtype."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from offline_arena.models import GenerationRequest, SamplingParams
from offline_arena.models import dtype as dtype_module
from offline_arena.models.dtype import compute_dtype


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("OFFLINE_ARENA_DTYPE", raising=False)


@pytest.mark.parametrize("capability, supported, override, expected", [
    ((9, 0), True, None, "bfloat16"),      # Hopper
    ((8, 0), True, None, "bfloat16"),      # Ampere: the first with bf16 units
    ((7, 5), False, None, "float32"),      # Turing (T4): bf16 only emulated
    ((7, 0), False, None, "float32"),      # Volta (V100)
    ((8, 6), None, None, "bfloat16"),      # a torch without `including_emulation`: the capability decides
    ((7, 0), None, None, "float32"),
    ((6, 1), None, None, "float32"),
    ((7, 0), True, None, "bfloat16"),      # torch's own answer wins over the capability (ROCm reports so)
    ((7, 0), False, "bfloat16", "bfloat16"),  # OFFLINE_ARENA_DTYPE wins over both
    ((9, 0), True, "float32", "float32"),
])
def test_the_gpu_dtype_follows_native_bf16(capability, supported, override, expected):
    assert dtype_module.gpu_compute_dtype(capability, supported, override) == expected


def test_an_unknown_override_is_refused():
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        dtype_module.gpu_compute_dtype((9, 0), True, "fp8")


def stand_in_gpu(monkeypatch, capability, native: bool, takes_emulation_argument: bool = True):
    """torch.cuda as on a GPU of that capability, whose bf16 is native or only emulated."""
    if takes_emulation_argument:
        def is_bf16_supported(including_emulation: bool = True):
            return native or including_emulation  # emulated bf16 "works", as torch says by default
    else:
        def is_bf16_supported():
            return True  # older torch: emulation counted, no way to ask otherwise
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())


@pytest.mark.parametrize("takes_emulation_argument", [True, False])
def test_a_gpu_that_only_emulates_bf16_computes_in_float32(monkeypatch, takes_emulation_argument):
    stand_in_gpu(monkeypatch, (7, 0), native=False, takes_emulation_argument=takes_emulation_argument)
    assert compute_dtype("cuda") == "float32"
    assert compute_dtype("cuda:1") == "float32"
    stand_in_gpu(monkeypatch, (8, 0), native=True, takes_emulation_argument=takes_emulation_argument)
    assert compute_dtype("cuda:0") == "bfloat16"
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "float32")
    assert compute_dtype("cuda") == "float32"


def test_answers_of_different_dtypes_never_share_keys(pico_model_dir, tmp_path):
    """Off the CPU too: a float32 override (or a GPU without native bf16) must not read bf16 answers, nor
    the other way round. The "meta" device stands in for a GPU here: the generator loads there without one,
    and nothing about it is the CPU's. CPU keys stay as they were (float32 plain, bf16 with ":bf16")."""
    from offline_arena.models.cached import CachedGenerator
    from offline_arena.models.hf import TransformersGenerator
    from offline_arena.store import Store

    store = Store(tmp_path / "store.sqlite")
    requests = [GenerationRequest.of([{"role": "user", "content": "Hi"}], params=SamplingParams(max_new_tokens=4))]

    def key(device: str, dtype: str) -> str:
        generator = TransformersGenerator(pico_model_dir, device=device, dtype=dtype, progress=False)
        return CachedGenerator(generator, store).keys(requests)[0], generator.fingerprint

    keys = {(device, dtype): key(device, dtype) for device in ("meta", "cpu") for dtype in ("float32", "bfloat16")}
    assert keys["meta", "float32"][0] != keys["meta", "bfloat16"][0]
    assert keys["cpu", "float32"][0] != keys["cpu", "bfloat16"][0]
    plain = keys["cpu", "float32"][1]
    assert ":" in plain and not plain.endswith(":bf16") and keys["cpu", "bfloat16"][1] == plain + ":bf16"


# A process as a run starts its ranks or actors: imports done, it says it is ready, then asks for the dtype.
# Its measurement is made observable and slow: it logs itself, waits until every process is ready (and a
# moment more, so that each has looked in the cache), and answers True for the first measurement, False for
# the second, and so on. Without a lock all of them measure, and their answers alternate.
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import torch  # noqa: F401  (imported before "ready": what is left is a cache read, milliseconds)
    import offline_arena.models.builtin  # noqa: F401
    from offline_arena.models import dtype

    log, ready, processes = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

    def measured():
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        end = time.monotonic() + 20
        while len(ready.read_text().split()) < processes and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.0)
        order = log.read_text().split().index(str(os.getpid()))
        return order % 2 == 0

    dtype.measure_cpu_bf16_is_fast = measured
    with open(ready, "a") as f:
        f.write(f"{os.getpid()}\\n")
    print(dtype.compute_dtype("cpu"))
""")


def test_processes_started_together_on_a_cold_cache_agree(tmp_path):
    processes = 4
    log, ready = tmp_path / "measurements.log", tmp_path / "ready.log"
    log.touch()
    ready.touch()
    env = {**os.environ, "OFFLINE_ARENA_CACHE": str(tmp_path / "cache")}
    env.pop("OFFLINE_ARENA_DTYPE", None)
    started = [subprocess.Popen([sys.executable, "-c", CHILD, str(log), str(ready), str(processes)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    outputs = [p.communicate(timeout=120) for p in started]
    assert all(p.returncode == 0 for p in started), [err[-2000:] for _, err in outputs]
    answers = [out.strip() for out, _ in outputs]
    assert len(log.read_text().split()) == 1, f"measured {len(log.read_text().split())} times: {answers}"
    assert answers == ["bfloat16"] * processes  # the one measurement (the first: True) is everyone's
    assert Path(env["OFFLINE_ARENA_CACHE"], "cpu_bf16.json").exists()
