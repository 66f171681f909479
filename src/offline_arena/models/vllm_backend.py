"""Generation with vLLM's offline engine (extra `[vllm]`, needs a GPU). Same interface as the others:
vLLM schedules and batches internally, so we hand it every request at once."""

from __future__ import annotations

from typing import Sequence

from .base import Completion, GenerationRequest
from .chat import render_prompt


class VLLMGenerator:
    def __init__(self, model: str, fingerprint: str | None = None, **engine_kwargs):
        try:
            from vllm import LLM
        except ImportError as error:
            raise ImportError("the vllm: backend needs the vllm extra: pip install 'offline-arena[vllm]'") from error
        from .hf import local_fingerprint

        self.llm = LLM(model=model, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.fingerprint = fingerprint or local_fingerprint(model).replace("hf:", "vllm:", 1)
        self.num_generated = 0

    def render(self, messages) -> str:
        return render_prompt(self.tokenizer, messages)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        from vllm import SamplingParams

        sampling = [
            SamplingParams(max_tokens=r.params.max_new_tokens, temperature=r.params.temperature,
                           top_p=r.params.top_p, top_k=r.params.top_k or -1,
                           seed=r.sampling_seed)
            for r in requests
        ]
        outputs = self.llm.chat([list(r.messages) for r in requests], sampling, use_tqdm=True)
        self.num_generated += len(requests)
        return [
            Completion(text=o.outputs[0].text.strip(), stopped=o.outputs[0].finish_reason == "stop",
                       num_tokens=len(o.outputs[0].token_ids), meta={"finish_reason": o.outputs[0].finish_reason})
            for o in outputs
        ]
