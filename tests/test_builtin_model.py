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

    from offline_arena.models import GenerationRequest, SamplingParams
    from offline_arena.loading import load_generator
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


@pytest.mark.slow
@pytest.mark.ci
def test_the_decoder_says_what_float32_generate_says_on_the_embedded_model():
    """Issue 12: greedy answers of the pipeline's generator, in the dtype this machine computes in, against
    plain float32 `generate` on 24 pack prompts of varied length. In float32: the same answers. In bf16:
    the same next token at >= 90 % of the float32 answers' positions, each given the float32 prefix (free-
    running greedy answers compound the first difference: measured 63 % position by position, 98 % teacher-
    forced). Every answer that stops ends exactly at <|im_end|>."""
    import torch

    from offline_arena.models import GenerationRequest, SamplingParams
    from offline_arena.models.builtin import materialise
    from offline_arena.models.chat import end_of_turn_token_id
    from offline_arena.models.decode import decode
    from offline_arena.models.dtype import compute_dtype
    from offline_arena.models.hf import TransformersGenerator
    from offline_arena.prompts import load_prompts

    folder = materialise("smollm2-135m-instruct")
    reference = TransformersGenerator(folder, dtype="float32", progress=False)
    ours = reference if compute_dtype("cpu") == "float32" else TransformersGenerator(folder, progress=False)
    prompts = load_prompts("builtin:verifiable:round1/sft:24")
    texts = [reference.render(p.messages) for p in prompts]
    inputs = reference.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = reference.model.generate(**inputs, max_new_tokens=48, do_sample=False, eos_token_id=reference.stop_ids,
                                       pad_token_id=reference.tokenizer.pad_token_id, temperature=None, top_p=None,
                                       top_k=None)
    expected = [row[:next((i + 1 for i, t in enumerate(row) if t in reference.stop_ids), len(row))]
                for row in out[:, inputs["input_ids"].shape[1]:].tolist()]
    answers = ours.generate([GenerationRequest.of(p.messages, params=SamplingParams(48, temperature=0.0))
                             for p in prompts])
    if ours is reference:
        assert answers == [reference._to_completion(row) for row in expected]
    else:
        agree = total = 0
        for text, answer in zip(texts, expected):
            prompt = reference.tokenizer(text, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logits = ours.model(input_ids=torch.tensor([prompt + answer])).logits[0]
            picked = logits[len(prompt) - 1:len(prompt) + len(answer) - 1].float().argmax(-1).tolist()
            agree, total = agree + sum(a == b for a, b in zip(picked, answer)), total + len(answer)
        assert agree / total >= 0.9
    eot = end_of_turn_token_id(reference.tokenizer)
    tokens, _ = decode(ours.model, inputs["input_ids"], inputs["attention_mask"], 48, ours.stop_ids,
                       prefill_tokens=1024)  # several prefill chunks
    stopped = [row for row in tokens if len(row) < 48]
    assert stopped and all(row[-1] == eot and eot not in row[:-1] for row in stopped)
