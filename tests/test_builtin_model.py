import subprocess
import sys

import pytest


def test_import_and_help_stay_light():
    """`arena --help` must not import torch or transformers (they take seconds to load)."""
    code = ("import sys, offline_arena.cli as cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_builtin_fingerprint_is_stable():
    from offline_arena.models.builtin import builtin_fingerprint

    first = builtin_fingerprint("smollm2-135m-instruct")
    assert first.startswith("builtin:smollm2-135m-instruct:") and first == builtin_fingerprint("smollm2-135m-instruct")


@pytest.mark.slow
@pytest.mark.ci
def test_builtin_model_materialises_loads_fast_and_answers():
    import time

    from offline_arena.models import GenerationRequest, SamplingParams, load_generator
    from offline_arena.models.builtin import materialise

    folder = materialise("smollm2-135m-instruct")
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    started = time.perf_counter()
    generator = load_generator("builtin:smollm2-135m-instruct")
    load_seconds = time.perf_counter() - started
    assert load_seconds < 10, f"loading the materialised model took {load_seconds:.1f}s"
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    answer = generator.generate([GenerationRequest.of(question, params=SamplingParams(32, temperature=0.0))])[0]
    assert "Paris" in answer.text and answer.stopped
