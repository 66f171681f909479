"""Any OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp, `transformers serve`, hosted APIs).

Requests go out concurrently (asyncio + httpx) but at most `concurrency` at a time, so a 70B opponent
behind one server is not flooded; answers come back in request order.

Failures. A request is retried, up to `max_retries` times, after: an HTTP 408/409/425/429/5xx answer, a
timeout (no answer within `timeout_s`), a connection refused or dropped mid-answer, and a 200 answer whose
body is not a chat completion (not JSON, no choices, no message text). A server's Retry-After (seconds or
an HTTP date) is honoured up to `max_retry_after_s`; otherwise the wait is exponential, `backoff_s`
doubled each retry up to `max_backoff_s`, with "equal jitter" (a random point in the upper half of that
ceiling). Any other answer (400, 401, 404, ...), or the last failed retry, raises `HTTPGenerationError`
naming the URL, the number of attempts and what the server said; the other requests of the batch are then
cancelled. A failure is never turned into an empty answer, which a judge would count as a loss or a tie.

The API key. It is read from the environment variable `api_key_env` names (a recipe's `api_key_env`,
default OPENAI_API_KEY) when the generator is built and again at each `generate`; it is never stored,
logged, part of a fingerprint, or shown in an error (any echo of it in a server's answer is replaced by
"[redacted]"). It is sent over `https://` anywhere, and over plain `http://` only to a loopback host
(127.0.0.0/8, ::1, localhost), which is then reached directly, never through an HTTP_PROXY from the
environment. Anything else is refused with `InsecureTransportError`, unless you opt in for a network you
trust with `allow_insecure_http=True` or the environment variable OFFLINE_ARENA_ALLOW_INSECURE_HTTP=1.
Without a key, plain http is allowed anywhere: there is nothing to leak.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from .base import Completion, GenerationRequest, canonical_json

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
ALLOW_INSECURE_HTTP_ENV = "OFFLINE_ARENA_ALLOW_INSECURE_HTTP"
REDACTED = "[redacted]"


class HTTPGenerationError(RuntimeError):
    pass


class InsecureTransportError(HTTPGenerationError):
    """The API key would travel unencrypted to a host that is not this machine."""


class MalformedAnswer(ValueError):
    """A 200 answer whose body is not a chat completion (a gateway's error page, a truncated proxy reply,
    an `{"error": ...}` object): retried like a 5xx, since it is the server's fault, not the request's."""


class OpenAIChatGenerator:
    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 300.0, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, max_retry_after_s: float = 60.0, revision: str | None = None,
                 progress: bool = True, allow_insecure_http: bool = False,
                 sleep: Callable[[float], Awaitable[None]] | None = None, rng: random.Random | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.progress = progress
        self.allow_insecure_http = allow_insecure_http
        # Injectable so tests and benches can see every wait (and skip it) and fix the jitter.
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._rng = rng if rng is not None else random.Random()
        # The endpoint does not tell us which weights it serves; a recipe may pin a revision label so
        # that swapping the model behind a URL does not reuse stale cached answers.
        self.fingerprint = f"openai:{self.base_url}#{model}" + (f"@{revision}" if revision else "")
        self.num_generated = 0
        self.num_retries = 0
        self._api_key()  # a key that must not go to this URL fails here, before a run spends hours

    def render(self, messages) -> str:
        return canonical_json(list(messages))  # the server applies its own template; key on the messages

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return _run_sync(self._generate_all(list(requests)))

    def _api_key(self) -> str | None:
        """The key from the environment, or None; raises when it may not be sent to `base_url`."""
        return api_key_for(self.base_url, self.api_key_env, self.allow_insecure_http)

    async def _generate_all(self, requests: list[GenerationRequest]) -> list[Completion]:
        import httpx
        from tqdm.auto import tqdm

        api_key = self._api_key()
        redact = _redactor(api_key)
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        url = urlsplit(self.base_url)
        # An HTTP_PROXY from the environment would carry a loopback request, key included, in the clear
        # to the proxy's host (and could not reach our loopback server anyway): loopback goes direct.
        direct = url.scheme == "http" and is_loopback(url.hostname)
        semaphore = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(requests), desc=f"generate {self.model}", unit="answer",
                   disable=not self.progress or None, leave=False)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits,
                                     trust_env=not direct) as client:
            async def one(request: GenerationRequest) -> Completion:
                async with semaphore:
                    completion = await self._complete(client, request, redact)
                bar.update(1)
                return completion

            tasks = [asyncio.ensure_future(one(r)) for r in requests]
            try:
                results = await asyncio.gather(*tasks)
            except BaseException:
                # The batch has failed: stop the requests still running or waiting, rather than leave them
                # retrying against a closing client.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            finally:
                bar.close()
        self.num_generated += len(results)
        return list(results)

    async def _complete(self, client, request: GenerationRequest, redact: Callable[[str], str]) -> Completion:
        import httpx

        url = f"{self.base_url}/chat/completions"
        payload = self._payload(request)
        problem, retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.num_retries += 1
                await self._sleep(self._delay(attempt, retry_after))
            retry_after = None
            try:
                response = await client.post(url, json=payload)
            except httpx.TimeoutException as error:
                problem = f"{type(error).__name__}: no answer within timeout_s={self.timeout_s:g}"
                continue
            except httpx.RequestError as error:  # refused, reset, dropped mid-answer, undecodable body
                problem = f"{type(error).__name__}: {error}"
                continue
            retry_after = response.headers.get("retry-after")
            if response.status_code == 200:
                try:
                    return _parse_chat_response(response)
                except MalformedAnswer as error:
                    problem = f"HTTP 200 with an unexpected body: {error}"
                    continue
            problem = f"HTTP {response.status_code}: {response.text[:500]}"
            if response.status_code not in RETRYABLE_STATUS:
                raise HTTPGenerationError(redact(f"{url} (model {self.model!r}) refused the request: {problem}"))
        raise HTTPGenerationError(redact(
            f"{url} (model {self.model!r}) failed after {self.max_retries + 1} attempts; last: {problem}"))

    def _payload(self, request: GenerationRequest) -> dict:
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
        return payload

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, ...)."""
        asked = _retry_after_seconds(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after_s)  # the server knows its load; a cap keeps a run moving
        ceiling = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        # Equal jitter: clients that failed together spread out, yet none retries at once.
        return ceiling / 2 + self._rng.random() * ceiling / 2


def _retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (delay-seconds or an HTTP date) as seconds from now; None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)  # HTTP dates are GMT
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return None if math.isnan(seconds) else max(seconds, 0.0)


def _parse_chat_response(response) -> Completion:
    """A completion from a 200 answer; raises MalformedAnswer when the body is not a chat completion."""
    try:
        body = response.json()
    except ValueError:
        raise MalformedAnswer(f"not JSON: {response.text[:500]}") from None
    try:
        choice = body["choices"][0]
        message, finish = choice["message"], choice.get("finish_reason")
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise MalformedAnswer(f"no choices[0].message: {response.text[:500]}") from None
    if content is None and finish == "length":
        content = ""  # the token budget ran out before any text (e.g. a reasoning model): a runaway, not a fault
    if not isinstance(content, str):
        raise MalformedAnswer(f"no message text (content={content!r}, finish_reason={finish!r}): "
                              f"{response.text[:500]}")
    return Completion(text=content.strip(), stopped=finish != "length", num_tokens=_completion_tokens(body),
                      meta={"finish_reason": finish})


def _completion_tokens(body: dict) -> int:
    """usage.completion_tokens, or 0 where a server leaves it out (the answer itself is still good)."""
    usage = body.get("usage")
    try:
        return int(usage.get("completion_tokens") or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


def api_key_for(base_url: str, api_key_env: str | None, allow_insecure_http: bool = False) -> str | None:
    """The key `api_key_env` holds, or None; raises InsecureTransportError when it may not go to `base_url`.
    The backend asks at each request, `arena run` before anything loads (preflight.py)."""
    key = os.environ.get(api_key_env) if api_key_env else None
    if key and not may_send_key(base_url, allow_insecure_http):
        raise InsecureTransportError(
            f"refusing to send the API key (${api_key_env}) over plain http:// to {base_url}: "
            f"the host is not loopback, so the key would cross the network unencrypted. Use https://, or "
            f"on a network you trust opt in with {ALLOW_INSECURE_HTTP_ENV}=1 (or allow_insecure_http=True)")
    return key or None


def may_send_key(base_url: str, allow_insecure_http: bool = False) -> bool:
    url = urlsplit(base_url)
    return (url.scheme == "https" or is_loopback(url.hostname) or allow_insecure_http
            or os.environ.get(ALLOW_INSECURE_HTTP_ENV) == "1")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it could resolve anywhere


def _redactor(secret: str | None) -> Callable[[str], str]:
    """Removes the secret from a message (a server may echo request headers back in its error body)."""
    if not secret:
        return lambda text: text
    return lambda text: text.replace(secret, REDACTED)


def _run_sync(coroutine):
    """asyncio.run, also from code that already runs inside an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
