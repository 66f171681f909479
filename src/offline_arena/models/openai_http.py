"""Any OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp, `transformers serve`, hosted APIs).

Requests go out concurrently (asyncio + httpx) but at most `concurrency` at a time per server, so a 70B
opponent behind one server is not flooded; answers come back in request order. Each generator runs one
event loop in a daemon thread of its own, with one router and one connection pool per replica, and every
call from any thread goes through it: so the limit holds across calls made at once (the contestants of a
battle, overlapping judge chunks, battles.py and judges/base.py), connections are reused, and a caller
that is itself inside an event loop (a notebook) only waits on a future. `generate_chunks` sends the
chunks of one call together and hands each back as soon as all its answers are in, so the store commits
it while later chunks are still being answered, rather than waiting for each chunk's slowest request
before sending the next.

Replicas. A model served by several replicas (`openai:http://h1/v1,http://h2/v1#name`; vLLM's
--data-parallel-size behind several ports, several hosts) is one generator: each request goes to the
least-loaded replica in the pool (fewest requests in flight, ties to the one named first), each replica
holding at most `concurrency`. A replica that fails a request (connection refused or dropped, timeout,
408/409/425/429/5xx, a malformed 200) leaves the pool for `cooldown_s` (longer if its Retry-After asks)
and the request is retried at once on another replica; the retry budget counts attempts on every replica.
Once its cool-down is over a replica is back in the pool but takes one request at a time until one is
answered (a replica that hangs then holds one request for `timeout_s`, not `concurrency` of them). Only
when no other replica is in the pool does a retry wait out the backoff below, and then it goes to the
least-loaded replica whatever its state. A 4xx other than those is the request's fault, not the replica's,
and is not retried anywhere. `replica_stats` counts each replica's answers and failures (logged after each
`generate` when there are several). With one URL all this reduces to the behaviour below.

Failures. A request is retried, up to `max_retries` times, after: an HTTP 408/409/425/429/5xx answer, a
timeout (no answer within `timeout_s`), a connection refused or dropped mid-answer, and a 200 answer whose
body is not a chat completion (not JSON, no choices, no message text). A server's Retry-After (seconds or
an HTTP date) is honoured up to `max_retry_after_s`; otherwise the wait is exponential, `backoff_s`
doubled each retry up to `max_backoff_s`, with "equal jitter" (a random point in the upper half of that
ceiling). Any other answer (400, 401, 404, ...), or the last failed retry, raises `HTTPGenerationError`
naming the URL, the number of attempts and what the server said; the other requests of the batch are then
cancelled; with replicas, the error names each one tried and what it said last. A failure is never turned
into an empty answer, which a judge would count as a loss or a tie.

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
import collections
import concurrent.futures
import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable, Iterator, Sequence
from urllib.parse import urlsplit

from .base import Completion, GenerationRequest, canonical_json
from .spec import is_loopback, split_base_urls

log = logging.getLogger(__name__)

# The 4xx answers that pass (timeout, conflict, too early, rate limit); any other 4xx is the request's fault.
RETRYABLE_4XX = {408, 409, 425, 429}
ALLOW_INSECURE_HTTP_ENV = "OFFLINE_ARENA_ALLOW_INSECURE_HTTP"
REDACTED = "[redacted]"


def retryable_status(status: int) -> bool:
    """Every 5xx is retried, as the openai client does (>= 500): gateways and hosted APIs answer transient
    failures with codes outside the standard four (507, Cloudflare's 520-524, 529 overloaded), and even a
    501 may come from one replica of several that runs another server version, or from a proxy in between.
    A 5xx that is in fact permanent costs `max_retries` bounded retries before the same clear error."""
    return status in RETRYABLE_4XX or 500 <= status <= 599


class HTTPGenerationError(RuntimeError):
    pass


class InsecureTransportError(HTTPGenerationError):
    """The API key would travel unencrypted to a host that is not this machine."""


class MalformedAnswer(ValueError):
    """A 200 answer whose body is not a chat completion (a gateway's error page, a truncated proxy reply,
    an `{"error": ...}` object): retried like a 5xx, since it is the server's fault, not the request's."""


@dataclass
class Replica:
    """One base URL of the served model, as the router sees it."""

    url: str  # base URL, no trailing slash
    order: int  # its place in the spec: ties go to the earlier one, so routing is reproducible
    in_flight: int = 0
    answered: int = 0
    failed: int = 0
    out_until: float = -math.inf  # clock time until which it is out of the pool (cooling down)
    suspect: bool = False  # it failed and has not answered a request sent since
    failures_seen: int = 0  # bumped at each failure: tells a request sent after it from one sent before

    @property
    def chat_url(self) -> str:
        return f"{self.url}/chat/completions"


@dataclass
class _Failed:
    """One attempt that got no completion."""

    problem: str
    retry_after: str | None = None
    retryable: bool = True  # False: the request's fault (a 4xx), so no other replica would do better


class _Router:
    """Picks the replica for each attempt and keeps the pool. Runs inside one event loop: no locks, and
    every state change is made between awaits."""

    def __init__(self, replicas: list[Replica], concurrency: int, cooldown_s: float, clock: Callable[[], float]):
        self.replicas, self.concurrency, self.cooldown_s, self.clock = replicas, concurrency, cooldown_s, clock
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    def in_pool(self, replica: Replica) -> bool:
        return self.clock() >= replica.out_until

    def another_in_pool(self, replica: Replica | None) -> bool:
        """Whether a retry after `replica` failed has somewhere else to go right away."""
        return any(r is not replica and self.in_pool(r) for r in self.replicas)

    def _limit(self, replica: Replica) -> int:
        # A replica back from its cool-down takes one request until it answers; with a single replica there
        # is nowhere else to send the others, so it keeps the full limit (the single-URL behaviour).
        return 1 if replica.suspect and len(self.replicas) > 1 else self.concurrency

    def choose(self) -> Replica | None:
        """The least-loaded replica with room, from the pool, or from every replica when none is in it."""
        pool = [r for r in self.replicas if self.in_pool(r)]
        if pool:
            free = [r for r in pool if r.in_flight < self._limit(r)]
        else:  # every replica is down: nowhere better to go, so use them as a single one would be used
            free = [r for r in self.replicas if r.in_flight < self.concurrency]
        return min(free, key=lambda r: (r.in_flight, r.order), default=None)

    async def acquire(self) -> Replica:
        """A replica slot, waiting until one frees. Whenever this finds nothing, every candidate is at its
        limit (so holds >= 1 request), and each of those requests wakes a waiter when it ends."""
        while (replica := self.choose()) is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the free slot on
                raise
        replica.in_flight += 1
        if self.choose() is not None:
            self._wake_one()  # room left (e.g. the pool changed): the next waiter need not wait for a release
        return replica

    def release(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self._wake_one()

    def answered(self, replica: Replica, failures_seen_at_send: int) -> None:
        replica.answered += 1
        # Only a request sent after its last failure proves a replica well again: one that was already in
        # flight when it failed may have been answered just before it went down.
        if replica.suspect and failures_seen_at_send == replica.failures_seen:
            replica.suspect, replica.out_until = False, -math.inf
            self._wake_one()

    def failed(self, replica: Replica, asked_wait_s: float | None) -> None:
        replica.failed += 1
        replica.failures_seen += 1
        replica.suspect = True
        # A server that says when to come back (Retry-After) knows its load better than our default.
        replica.out_until = self.clock() + max(self.cooldown_s, asked_wait_s or 0.0)
        self._wake_one()  # if that emptied the pool, waiters may now use any replica

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


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
        from tqdm.auto import tqdm

        session = self._started_session()
        # Read at each call (a rotated key is used at once) and sent with each request, not kept in a client.
        api_key = self._api_key()
        auth, redact = ({"Authorization": f"Bearer {api_key}"} if api_key else {}), _redactor(api_key)
        bar = tqdm(total=sum(len(c) for c in chunks), desc=f"generate {self.model}", unit="answer",
                   disable=not self.progress or None, leave=False)
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
        import httpx

        url = urlsplit(base_url)
        # An HTTP_PROXY from the environment would carry a loopback request, key included, in the clear
        # to the proxy's host (and could not reach our loopback server anyway): loopback goes direct.
        direct = url.scheme == "http" and is_loopback(url.hostname)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(headers={"Content-Type": "application/json"}, timeout=self.timeout_s,
                                 limits=limits, trust_env=not direct)

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
        asked = _retry_after_seconds(retry_after)
        return None if asked is None else min(asked, self.max_retry_after_s)

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
        asked = _retry_after_seconds(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after_s)  # the server knows its load; a cap keeps a run moving
        ceiling = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        # Equal jitter: clients that failed together spread out, yet none retries at once.
        return ceiling / 2 + self._rng.random() * ceiling / 2


# fingerprint -> the base URLs of the first generator built with it in this process
_FIRST_SERVED_AT: dict[str, frozenset[str]] = {}


def _warn_if_served_elsewhere(fingerprint: str, urls: Sequence[str]) -> None:
    """Two generators of one served name at URLs they do not share are likely two models under one name,
    which would share cached answers (preflight refuses that in a recipe; this covers other callers)."""
    first = _FIRST_SERVED_AT.setdefault(fingerprint, frozenset(urls))
    if not first & set(urls):
        log.warning("%s is also served at %s: answers are cached by served model name, not URL, so both share "
                    "them; serve two different models under different names", fingerprint, ", ".join(sorted(first)))


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


def _redactor(secret: str | None) -> Callable[[str], str]:
    """Removes the secret from a message (a server may echo request headers back in its error body)."""
    if not secret:
        return lambda text: text
    return lambda text: text.replace(secret, REDACTED)


class _Session:
    """One generator's event loop, in a daemon thread, with its router and a client per replica. Every
    coroutine of the generator runs on this loop, so the router's state needs no lock (see _Router)."""

    def __init__(self, replicas: list[Replica], concurrency: int, cooldown_s: float, clock: Callable[[], float],
                 make_client: Callable[[str], object]):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-http", daemon=True)
        self.thread.start()
        self.router = _Router(replicas, concurrency, cooldown_s, clock)
        self.clients = {r.url: make_client(r.url) for r in replicas}

    def submit(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        async def close_clients():
            for client in self.clients.values():
                await client.aclose()

        self.submit(close_clients()).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
