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
