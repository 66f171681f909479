"""The generator for one OpenAI-compatible chat endpoint or its replicas.

Requests go out concurrently (asyncio + httpx) but at most `concurrency` at a time per server, so a 70B
opponent behind one server is not flooded; answers come back in request order. Each generator runs one
event loop in a daemon thread of its own, with one router and one connection pool per replica, and every
call from any thread goes through it: so the limit holds across calls made at once (the contestants of a
battle, overlapping judge chunks, battles.py and judges/base.py), connections are reused, and a caller
that is itself inside an event loop (a notebook) only waits on a future. `generate_chunks` sends the
chunks of one call together and hands each back as soon as all its answers are in, so the store commits
it while later chunks are still being answered, rather than waiting for each chunk's slowest request
before sending the next.

Where a request goes is router.py's, when it is retried retries.py's, how the key travels transport.py's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import threading
import time
from typing import Awaitable, Callable, Iterator, Sequence

from ..base import Completion, GenerationRequest, canonical_json
from ..spec import split_base_urls
from .retries import HTTPGenerationError, MalformedAnswer, _Failed, asked_wait_s, retry_delay, retryable_status
from .router import Replica
from .transport import _redactor, _Session, api_key_for, http_client

log = logging.getLogger(__name__)


class OpenAIChatGenerator:
    def __init__(self, base_url: str | Sequence[str], model: str, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout_s: float = 300.0, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, max_retry_after_s: float = 60.0, revision: str | None = None,
                 progress: bool = True, allow_insecure_http: bool = False, cooldown_s: float = 15.0,
                 sleep: Callable[[float], Awaitable[None]] | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] | None = None):
        """`base_url`: one base URL, several joined as in a spec (`http://h1/v1,http://h2/v1`), or a list;
        `concurrency` is per replica."""
        urls = split_base_urls(base_url) if isinstance(base_url, str) else tuple(u.rstrip("/") for u in base_url)
        if not urls or len(set(urls)) < len(urls):
            raise ValueError(f"base URLs must be distinct and at least one, got {list(urls)}")
        self.base_urls = urls
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.cooldown_s = cooldown_s
        self.progress = progress
        self.allow_insecure_http = allow_insecure_http
        # Injectable so tests and benches can see every wait (and skip it), fix the jitter and move the
        # cool-down clock.
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock if clock is not None else time.monotonic
        # Kept across `generate` calls, so a replica that failed stays out for its cool-down in the next one.
        self._replicas = [Replica(url, order) for order, url in enumerate(urls)]
        self._session: _Session | None = None  # the event loop, router and clients, made at the first call
        self._session_lock = threading.Lock()
        # The fingerprint names the served model, not where it is served: replicas serve the same weights
        # by definition, so the store's keys (and a resumed run's cache hits) stay the same on 1 replica or
        # 3, or after a host moves. The endpoint does not tell us which weights it serves; a recipe may pin
        # a revision label so that swapping the model behind a name does not reuse stale cached answers.
        self.fingerprint = f"openai:#{model}" + (f"@{revision}" if revision else "")
        _warn_if_served_elsewhere(self.fingerprint, urls)
        self.num_generated = 0
        self.num_retries = 0
        self._api_key()  # a key that must not go to one of these URLs fails here, before a run spends hours

    @property
    def replica_stats(self) -> dict[str, dict[str, int]]:
        """{base URL: {"answered": n, "failed": n}}, over every `generate` call so far."""
        return {r.url: {"answered": r.answered, "failed": r.failed} for r in self._replicas}

    def render(self, messages) -> str:
        return canonical_json(list(messages))  # the server applies its own template; key on the messages

    # Its work is done by servers elsewhere: this process only waits, so callers may run it alongside other
    # work (battles.py runs contestants at once, judges/base.py overlaps judge chunks).
    remote = True

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return dict(self.generate_chunks([requests]))[0]

    def generate_chunks(self, chunks: Sequence[Sequence[GenerationRequest]]) -> Iterator[tuple[int, list[Completion]]]:
        """(chunk index, its completions) for every chunk, each as soon as all its answers are in. All chunks
        are sent at once (the router still holds each replica to `concurrency` requests, first come first
        served, so early chunks finish first). If one fails, the rest are cancelled and its error raised."""
        from ...progress import progress_bar

        session = self._started_session()
        # Read at each call (a rotated key is used at once) and sent with each request, not kept in a client.
        api_key = self._api_key()
        auth, redact = ({"Authorization": f"Bearer {api_key}"} if api_key else {}), _redactor(api_key)
        bar = progress_bar(sum(len(c) for c in chunks), f"generate {self.model}", "answer", self.progress)
        futures = {session.submit(self._generate_all(session, list(chunk), auth, redact, bar)): index
                   for index, chunk in enumerate(chunks)}
        try:
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        finally:
            # Also reached when the caller stops early (an error, Ctrl-C): nothing keeps running unseen, and
            # the router's counts come back to what the finished requests left.
            for future in futures:
                future.cancel()
            concurrent.futures.wait(futures)
            bar.close()
            self._log_replica_stats()

    def close(self) -> None:
        """Close the connections and stop the event loop (a later call starts them again)."""
        with self._session_lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def _started_session(self) -> "_Session":
        with self._session_lock:
            # A forked child (a launched job, a DataLoader worker) has the object but not the loop's thread.
            if self._session is None or self._session.pid != os.getpid():
                self._session = _Session(self._replicas, self.concurrency, self.cooldown_s, self._clock,
                                         self._client)
            return self._session

    def _api_key(self) -> str | None:
        """The key from the environment, or None; raises when it may not be sent to every base URL."""
        key = None
        for url in self.base_urls:
            key = api_key_for(url, self.api_key_env, self.allow_insecure_http)
        return key

    async def _generate_all(self, session: "_Session", requests: list[GenerationRequest], auth: dict,
                            redact: Callable[[str], str], bar) -> list[Completion]:

        async def one(request: GenerationRequest) -> Completion:
            completion = await self._complete(session, request, auth, redact)
            bar.update(1)
            return completion

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            # The chunk has failed (or was cancelled): stop its requests still running or waiting, rather
            # than leave them holding replica slots.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        self.num_generated += len(results)
        return list(results)

    def _client(self, base_url: str):
        """One client per replica, so each has its own connection limit and proxy rule."""
        return http_client(base_url, self.concurrency, self.timeout_s)

    def _log_replica_stats(self) -> None:
        if len(self._replicas) > 1:
            log.info("%s replicas (answered/failed so far): %s", self.model,
                     ", ".join(f"{r.url} {r.answered}/{r.failed}" for r in self._replicas))

    async def _complete(self, session: "_Session", request: GenerationRequest, auth: dict,
                        redact: Callable[[str], str]) -> Completion:
        router = session.router
        payload = self._payload(request)
        last_problems: dict[str, str] = {}  # chat URL -> what it said last, for the final error
        retry_after, failed_on, waits = None, None, 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.num_retries += 1
                if not router.another_in_pool(failed_on):  # nowhere else to go: back off, as with one URL
                    waits += 1
                    await self._sleep(self._delay(waits, retry_after))
            replica = await router.acquire()
            failures_seen = replica.failures_seen
            try:
                outcome = await self._attempt(session.clients[replica.url], replica.chat_url, payload, auth)
            finally:
                router.release(replica)
            if isinstance(outcome, Completion):
                router.answered(replica, failures_seen)
                return outcome
            if not outcome.retryable:
                raise HTTPGenerationError(redact(
                    f"{replica.chat_url} (model {self.model!r}) refused the request: {outcome.problem}"))
            router.failed(replica, self._asked_wait(outcome.retry_after))
            last_problems.pop(replica.chat_url, None)
            last_problems[replica.chat_url] = outcome.problem  # re-inserted: the dict ends with the latest
            retry_after, failed_on = outcome.retry_after, replica
        raise HTTPGenerationError(redact(self._gave_up(last_problems)))

    async def _attempt(self, client, url: str, payload: dict, auth: dict) -> Completion | _Failed:
        """One POST: the completion, or what went wrong."""
        import httpx

        try:
            response = await client.post(url, json=payload, headers=auth)
        except httpx.TimeoutException as error:
            return _Failed(f"{type(error).__name__}: no answer within timeout_s={self.timeout_s:g}")
        except httpx.RequestError as error:  # refused, reset, dropped mid-answer, undecodable body
            return _Failed(f"{type(error).__name__}: {error}")
        retry_after = response.headers.get("retry-after")
        if response.status_code == 200:
            try:
                return _parse_chat_response(response)
            except MalformedAnswer as error:
                return _Failed(f"HTTP 200 with an unexpected body: {error}", retry_after)
        return _Failed(f"HTTP {response.status_code}: {response.text[:500]}", retry_after,
                       retryable=retryable_status(response.status_code))

    def _gave_up(self, last_problems: dict[str, str]) -> str:
        attempts = self.max_retries + 1
        if len(self._replicas) == 1:
            [(url, problem)] = last_problems.items()
            return f"{url} (model {self.model!r}) failed after {attempts} attempts; last: {problem}"
        tried = "; ".join(f"{url}: {problem}" for url, problem in last_problems.items())
        untried = [r.chat_url for r in self._replicas if r.chat_url not in last_problems]
        return (f"model {self.model!r} failed after {attempts} attempts on {len(last_problems)} of "
                f"{len(self._replicas)} replicas; last from each: {tried}"
                + (f"; not reached (retry budget spent): {', '.join(untried)}" if untried else ""))

    def _asked_wait(self, retry_after: str | None) -> float | None:
        return asked_wait_s(retry_after, self.max_retry_after_s)

    def _payload(self, request: GenerationRequest) -> dict:
        params = request.params
        payload = {
            "model": self.model,
            "messages": list(request.messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            # Servers that honour it make sampling reproducible; distinct per sample of one prompt.
            "seed": request.sampling_seed,
        }
        if params.top_k:
            payload["top_k"] = params.top_k  # a vLLM/TGI extension; OpenAI ignores unknown sampling keys
        return payload

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, ...)."""
        return retry_delay(attempt, retry_after, self.backoff_s, self.max_backoff_s, self.max_retry_after_s,
                           self._rng)



# fingerprint -> the base URLs of the first generator built with it in this process
_FIRST_SERVED_AT: dict[str, frozenset[str]] = {}


def _warn_if_served_elsewhere(fingerprint: str, urls: Sequence[str]) -> None:
    """Two generators of one served name at URLs they do not share are likely two models under one name,
    which would share cached answers (preflight refuses that in a recipe; this covers other callers)."""
    first = _FIRST_SERVED_AT.setdefault(fingerprint, frozenset(urls))
    if not first & set(urls):
        log.warning("%s is also served at %s: answers are cached by served model name, not URL, so both share "
                    "them; serve two different models under different names", fingerprint, ", ".join(sorted(first)))


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

