"""Any OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp, `transformers serve`, hosted APIs).

Requests go out concurrently (asyncio + httpx) but bounded by a semaphore, so a 70B opponent behind one
server is not flooded. 429 and 5xx answers and dropped connections are retried with exponential backoff
(honouring Retry-After); anything else, or the last failed retry, raises an error that says which URL,
which status and what the server said. The API key is read from the environment at request time and is
never stored, logged, or part of a fingerprint.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Sequence

from .base import Completion, GenerationRequest, canonical_json

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class HTTPGenerationError(RuntimeError):
    pass


class OpenAIChatGenerator:
    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 300.0, max_retries: int = 5, backoff_s: float = 1.0,
                 revision: str | None = None, progress: bool = True):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.progress = progress
        # The endpoint does not tell us which weights it serves; a recipe may pin a revision label so
        # that swapping the model behind a URL does not reuse stale cached answers.
        self.fingerprint = f"openai:{self.base_url}#{model}" + (f"@{revision}" if revision else "")
        self.num_generated = 0

    def render(self, messages) -> str:
        return canonical_json(list(messages))  # the server applies its own template; key on the messages

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return _run_sync(self._generate_all(list(requests)))

    async def _generate_all(self, requests: list[GenerationRequest]) -> list[Completion]:
        import httpx
        from tqdm.auto import tqdm

        semaphore = asyncio.Semaphore(self.concurrency)
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        bar = tqdm(total=len(requests), desc=f"generate {self.model}", unit="answer",
                   disable=not self.progress or None, leave=False)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits) as client:
            async def one(request: GenerationRequest) -> Completion:
                async with semaphore:
                    completion = await self._complete(client, request)
                bar.update(1)
                return completion

            try:
                results = await asyncio.gather(*(one(r) for r in requests))
            finally:
                bar.close()
        self.num_generated += len(results)
        return list(results)

    async def _complete(self, client, request: GenerationRequest) -> Completion:
        import httpx

        params = request.params
        payload = {
            "model": self.model,
            "messages": list(request.messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            # Servers that honour it make sampling reproducible; distinct per sample of one prompt.
            "seed": request.seed * 100_003 + request.sample_index,
        }
        if params.top_k:
            payload["top_k"] = params.top_k  # a vLLM/TGI extension; OpenAI ignores unknown sampling keys
        url = f"{self.base_url}/chat/completions"
        last_problem, last_retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, last_retry_after))
            last_retry_after = None
            try:
                response = await client.post(url, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as error:
                last_problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code == 200:
                return _parse_chat_response(response, url)
            last_problem = f"HTTP {response.status_code}: {response.text[:500]}"
            if response.status_code not in RETRYABLE_STATUS:
                raise HTTPGenerationError(f"{url} (model {self.model!r}) refused the request: {last_problem}")
            last_retry_after = response.headers.get("retry-after")
        raise HTTPGenerationError(
            f"{url} (model {self.model!r}) failed after {self.max_retries + 1} attempts; last: {last_problem}")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 60.0)
            except ValueError:
                pass
        return self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)  # jittered exponential


def _parse_chat_response(response, url: str) -> Completion:
    try:
        body = response.json()
        choice = body["choices"][0]
        text = choice["message"]["content"] or ""
        finish = choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise HTTPGenerationError(f"{url} answered with an unexpected body ({error!r}): {response.text[:500]}")
    usage = body.get("usage") or {}
    return Completion(text=text.strip(), stopped=finish != "length",
                      num_tokens=int(usage.get("completion_tokens") or 0), meta={"finish_reason": finish})


def _run_sync(coroutine):
    """asyncio.run, also from code that already runs inside an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
