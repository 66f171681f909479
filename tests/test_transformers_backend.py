import pytest
import torch

from offline_arena.models import GenerationRequest, SamplingParams
from offline_arena.models.chat import end_of_turn_token_id, stop_token_ids
from offline_arena.models.hf import TransformersGenerator

QUESTIONS = ["Hi", "What is the capital of France? Please answer briefly and explain why.", "Name a colour.",
             "Write one long sentence about the sea, the sky, the wind and the boats in the harbour at dawn.",
             "2+2?"]


def requests(params, questions=QUESTIONS):
    return [GenerationRequest.of([{"role": "user", "content": q}], params=params) for q in questions]


def test_end_of_turn_is_im_end(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    eot = end_of_turn_token_id(tokenizer)
    assert tokenizer.convert_ids_to_tokens(eot) == "<|im_end|>"
    assert stop_token_ids(tokenizer)[0] == eot


def test_batched_completions_are_well_formed(pico_generator):
    params = SamplingParams(max_new_tokens=12, temperature=0.8)
    out = pico_generator.generate(requests(params))
    assert len(out) == len(QUESTIONS)
    for completion in out:
        assert isinstance(completion.text, str)
        assert 1 <= completion.num_tokens <= 12
        # A random pico model almost never emits <|im_end|>; when it did not, it must have run to the limit.
        assert completion.stopped or completion.num_tokens == 12


def test_greedy_batched_equals_one_at_a_time(pico_generator):
    """Left padding and length bucketing must not change what the model says."""
    params = SamplingParams(max_new_tokens=10, temperature=0.0)
    batched = [c.text for c in pico_generator.generate(requests(params))]
    single = [pico_generator.generate(requests(params, [q]))[0].text for q in QUESTIONS]
    assert batched == single


def test_same_requests_same_samples(pico_generator):
    params = SamplingParams(max_new_tokens=10, temperature=1.0)
    first = [c.text for c in pico_generator.generate(requests(params))]
    again = [c.text for c in pico_generator.generate(requests(params))]
    assert first == again
    other_seed = [GenerationRequest.of(r.messages, params=params, seed=7) for r in requests(params)]
    assert [c.text for c in pico_generator.generate(other_seed)] != first


def test_stops_on_end_of_turn(pico_model_dir, smol_tokenizer_dir):
    """A model rigged to always say <|im_end|> must stop at once, with the token counted and not shown."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(pico_model_dir)
    eot = end_of_turn_token_id(tokenizer)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[eot] = 10.0
    model.lm_head = head
    model.config.tie_word_embeddings = False
    generator = TransformersGenerator.from_model(model, tokenizer, fingerprint="rigged")
    out = generator.generate(requests(SamplingParams(max_new_tokens=8, temperature=0.0)))
    assert all(c.stopped and c.text == "" and c.num_tokens == 1 for c in out)


def test_completion_cut_at_first_stop_token(pico_generator):
    tokenizer = pico_generator.tokenizer
    words = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    eot = pico_generator.stop_ids[0]
    completion = pico_generator._to_completion(words + [eot] + words)
    assert (completion.text, completion.stopped, completion.num_tokens) == ("hello world", True, len(words) + 1)
    runaway = pico_generator._to_completion(words)
    assert (runaway.text, runaway.stopped, runaway.num_tokens) == ("hello world", False, len(words))


def test_fingerprint_changes_with_weights(pico_model_dir, tmp_path, smol_tokenizer_dir):
    from conftest import build_pico_model
    from offline_arena.models.fingerprint import folder_fingerprint

    other = build_pico_model(smol_tokenizer_dir, tmp_path / "other", seed=1)
    assert folder_fingerprint(pico_model_dir) == folder_fingerprint(pico_model_dir)
    assert folder_fingerprint(pico_model_dir) != folder_fingerprint(other)


def test_one_long_prompt_does_not_pad_a_whole_batch():
    from offline_arena.models.hf import length_capped_batches

    lengths = [100] * 40 + [2561]
    batches = length_capped_batches(list(range(41)), lengths, max_new_tokens=128, batch_size=32, max_batch_tokens=16384)
    assert [len(b) for b in batches] == [32, 8, 1]  # the long prompt goes alone, the short ones fill batches
    assert sorted(i for b in batches for i in b) == list(range(41))
    assert length_capped_batches([0, 1], [20000, 20000], 8, 32, 16384) == [[0], [1]]  # too long alone: still run


def _batch(generator, questions=QUESTIONS):
    texts = [generator.render([{"role": "user", "content": q}]) for q in questions]
    return generator.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


@pytest.mark.parametrize("prefill_tokens", ["auto", 1])
def test_greedy_decode_equals_plain_generate(lively_generator, prefill_tokens):
    """Issue 12: the decoder (chunked prefill, preallocated cache, finished rows dropped) says exactly what
    `generate` says, greedy; prefill_tokens=1 prefills every prompt alone at its own width."""
    from offline_arena.models.decode import decode, prefill_chunks

    g = lively_generator
    inputs = _batch(g)
    lengths = inputs["attention_mask"].sum(-1).tolist()
    assert len(set(lengths)) > 1  # the batch really is padded
    if prefill_tokens == 1:
        assert len(prefill_chunks(lengths, prefill_tokens)) == len(QUESTIONS)
    with torch.inference_mode():
        out = g.model.generate(**inputs, max_new_tokens=12, do_sample=False, eos_token_id=g.stop_ids,
                               pad_token_id=g.tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
    expected = [g._to_completion(row) for row in out[:, inputs["input_ids"].shape[1]:].tolist()]
    tokens, _ = decode(g.model, inputs["input_ids"], inputs["attention_mask"], 12, g.stop_ids,
                       prefill_tokens=prefill_tokens)
    assert [g._to_completion(t) for t in tokens] == expected
    assert len({c.text for c in expected}) == len(QUESTIONS)  # the rows really differ


def test_prefill_chunks_group_similar_lengths_within_the_budget():
    from offline_arena.models.decode import prefill_chunks

    lengths = [5, 50, 6, 48, 200]
    # sorted 5, 6, 48, 50, 200: 3 x 48 > 100 starts a chunk; 2 x 50 fits it; 200 alone exceeds any budget
    assert prefill_chunks(lengths, 100) == [[0, 2], [3, 1], [4]]
    assert prefill_chunks(lengths, None) == [[0, 2, 3, 1, 4]]


def test_the_preallocated_cache_refuses_to_overflow():
    from offline_arena.models.decode import PreallocatedLayer

    layer = PreallocatedLayer(batch=2, capacity=3)
    layer.update(torch.zeros(2, 1, 2, 4), torch.zeros(2, 1, 2, 4))
    keys, _ = layer.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))
    assert keys.shape == (2, 1, 3, 4) and keys[:, :, 2].eq(1).all() and keys[:, :, :2].eq(0).all()
    with pytest.raises(RuntimeError, match="capacity 3"):
        layer.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))


def test_finished_rows_leave_the_batch_without_waiting_for_a_runaway(lively_generator):
    """Rows that stop early are no longer computed while the others run on (counted in row-steps), and
    what every row says is unchanged."""
    from offline_arena.models.decode import decode

    g = lively_generator
    inputs = _batch(g)
    free, _ = decode(g.model, inputs["input_ids"], inputs["attention_mask"], 10, stop_ids=[-1])  # no stop at all
    # Make a token of one row a stop token: that row ends early, rows that never say it run on.
    stop = next(t for row in free for t in row[:5] if any(t not in other for other in free))
    ends = [row.index(stop) + 1 if stop in row else 10 for row in free]
    assert min(ends) <= 5 and max(ends) == 10  # a short answer and at least one runaway
    tokens, computed = decode(g.model, inputs["input_ids"], inputs["attention_mask"], 10, stop_ids=[stop],
                              prune_fraction=0)
    assert tokens == [row[:e] for row, e in zip(free, ends)]
    assert computed == [sum(e > step for e in ends) for step in range(10)]  # a row is computed while alive
    assert sum(computed) < len(ends) * 10  # generate() would have computed every row to the end


def test_compute_dtype_follows_what_the_cpu_measurably_does(monkeypatch):
    from offline_arena.models.dtype import compute_dtype, cpu_bf16_is_fast

    monkeypatch.delenv("OFFLINE_ARENA_DTYPE", raising=False)
    assert compute_dtype("cpu") == ("bfloat16" if cpu_bf16_is_fast() else "float32")
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "float32")  # what a GPU gets without one: tests/test_dtype.py
    assert compute_dtype("cuda") == "float32"
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "fp8")
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        compute_dtype("cpu")


def test_the_cpu_dtype_is_decided_once_per_machine(tmp_path):
    """Every process of a run must compute alike: the first one measures and writes the answer down, the
    next ones read it (here the written answer is flipped, and a new process follows it, not a measurement)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OFFLINE_ARENA_CACHE": str(tmp_path)}
    env.pop("OFFLINE_ARENA_DTYPE", None)
    code = "from offline_arena.models.dtype import compute_dtype; print(compute_dtype('cpu'))"

    def dtype_in_a_new_process() -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    first = dtype_in_a_new_process()
    [(key, fast)] = json.loads((tmp_path / "cpu_bf16.json").read_text()).items()
    assert first == ("bfloat16" if fast else "float32")
    (tmp_path / "cpu_bf16.json").write_text(json.dumps({key: not fast}))
    assert dtype_in_a_new_process() == ("float32" if fast else "bfloat16")


def test_batches_are_sized_by_memory_and_length(pico_model_dir):
    """With no batch size set, rows are bounded by the KV cache's share of free memory and (on a CPU) the
    padding cap, not by a fixed 32: 80 short prompts go through in one batch."""
    from offline_arena.models.hf import (KV_CACHE_SHARE, MAX_BATCH_TOKENS, MAX_ROWS, batch_token_budget,
                                         free_memory_bytes, kv_bytes_per_token)

    generator = TransformersGenerator(pico_model_dir, progress=False)
    config = generator.model.config
    per_token = kv_bytes_per_token(config, 4)
    assert per_token == 2 * config.num_hidden_layers * config.num_key_value_heads * (config.hidden_size // config.num_attention_heads) * 4
    assert generator.batch_size == MAX_ROWS
    assert generator.max_batch_tokens == min(MAX_BATCH_TOKENS, int(free_memory_bytes("cpu") * KV_CACHE_SHARE) // per_token)
    params = SamplingParams(max_new_tokens=4, temperature=0.0)
    requests = [GenerationRequest.of([{"role": "user", "content": f"hi {i}"}], params=params) for i in range(80)]
    generator.generate(requests)
    assert generator.batches_run == 1  # 80 short prompts: one batch
    fixed = TransformersGenerator(pico_model_dir, batch_size=32, progress=False)
    fixed.generate(requests)
    assert fixed.batches_run == 3  # 32 + 32 + 16


def test_sampling_draws_from_softmax_and_never_a_masked_token():
    """The inverse-CDF draw (models/decode.py `_sample`) follows softmax(logits / T), and top-k / top-p
    masked entries are never drawn, whatever the uniform number."""
    from offline_arena.models.decode import _pick, _sample

    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).repeat(40000, 1)
    generator = torch.Generator().manual_seed(0)
    for temperature, top_k, top_p in ((1.0, 0, 1.0), (0.5, 0, 1.0), (1.0, 2, 1.0), (1.0, 0, 0.7)):
        drawn = _pick(logits, temperature, top_p, top_k, generator)
        shares = torch.bincount(drawn, minlength=4).double() / len(drawn)
        expected = torch.softmax(logits[0].double() / temperature, -1)
        if top_k or top_p < 1:  # both keep the two most likely entries here
            expected = expected * torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
            expected = expected / expected.sum()
        assert torch.allclose(shares, expected, atol=0.01), (temperature, top_k, top_p, shares, expected)
        assert (shares[expected == 0] == 0).all()
    tail_masked = torch.tensor([[0.5, 0.5, 0.0, 0.0]]).repeat(1000, 1)
    assert set(_sample(tail_masked, generator).tolist()) == {0, 1}


def test_top_p_keeps_the_smallest_set_that_reaches_p_at_the_exact_boundary():
    """Review of issue 24: at a boundary hit exactly (two entries of probability 0.5, top_p 0.5) the first
    entry alone reaches p, so only it may be drawn (transformers' TopPLogitsWarper keeps the same set);
    `>` in the mask kept one entry too many."""
    from offline_arena.models.decode import _pick

    logits = torch.tensor([[0.0, 0.0, -30.0]]).repeat(2000, 1)  # softmax: exactly 0.5, 0.5 and ~1e-13
    drawn = _pick(logits, 1.0, 0.5, 0, torch.Generator().manual_seed(0))
    assert len(set(drawn.tolist())) == 1, torch.bincount(drawn)
    assert set(_pick(logits, 1.0, 0.51, 0, torch.Generator().manual_seed(0)).tolist()) == {0, 1}
