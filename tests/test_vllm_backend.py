"""Runs only where the vllm extra and a GPU are present: `pytest -m vllm`."""

import pytest


@pytest.mark.vllm
def test_vllm_backend_answers_like_the_others():
    from offline_arena.models import GenerationRequest, SamplingParams
    from offline_arena.loading import load_generator
    from offline_arena.models.builtin import materialise

    generator = load_generator(f"vllm:{materialise('smollm2-135m-instruct')}")
    params = SamplingParams(max_new_tokens=32, temperature=0.0)
    out = generator.generate([GenerationRequest.of([{"role": "user", "content": "What is the capital of France?"}],
                                                   params=params),
                              GenerationRequest.of([{"role": "user", "content": "Count from 1 to 100."}],
                                                   params=SamplingParams(max_new_tokens=8, temperature=0.0))])
    assert "Paris" in out[0].text and out[0].stopped
    assert not out[1].stopped and out[1].num_tokens == 8
