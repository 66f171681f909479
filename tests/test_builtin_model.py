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


def test_builtin_fingerprint_is_the_hash_of_the_gguf(tmp_path, monkeypatch):
    """The fingerprint is recomputed here from the file's bytes, then compared with what builtin_fingerprint
    gives with an empty cache (computed, memo written), with that memo (read back), and with the cache the
    rest of the suite uses (a memo there from an earlier version of the file would fail here)."""
    import hashlib

    from offline_arena.models.builtin import builtin_fingerprint, gguf_path

    name = "smollm2-135m-instruct"
    expected = f"builtin:{name}:{hashlib.sha256(gguf_path(name).read_bytes()).hexdigest()[:16]}"
    shared = builtin_fingerprint(name)
    monkeypatch.setenv("OFFLINE_ARENA_CACHE", str(tmp_path / "empty-cache"))
    computed = builtin_fingerprint(name)
    memos = list((tmp_path / "empty-cache" / "fingerprints").glob(f"{name}-*.txt"))
    assert len(memos) == 1 and memos[0].read_text().strip() == expected
    assert computed == expected and builtin_fingerprint(name) == expected and shared == expected


@pytest.mark.slow
@pytest.mark.ci
def test_builtin_model_materialises_loads_fast_and_answers():
    import time

    from offline_arena.models import GenerationRequest, SamplingParams, load_generator
    from offline_arena.models.builtin import materialise

    folder = materialise("smollm2-135m-instruct")
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    # The claim is about loading the materialised folder (not the ~45 s GGUF conversion), not about Python
    # imports: run alone (`make test-slow`), the first import of torch and the Llama modules took 8-16 s of
    # the measured time on a busy 2-core machine, and the load itself 2 s.
    import torch  # noqa: F401
    from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: F401

    started = time.perf_counter()
    generator = load_generator("builtin:smollm2-135m-instruct")
    load_seconds = time.perf_counter() - started
    assert load_seconds < 10, f"loading the materialised model took {load_seconds:.1f}s"
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    answer = generator.generate([GenerationRequest.of(question, params=SamplingParams(32, temperature=0.0))])[0]
    assert "Paris" in answer.text and answer.stopped
