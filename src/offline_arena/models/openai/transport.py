"""The API key. It is read from the environment variable `api_key_env` names (a recipe's `api_key_env`,
default OPENAI_API_KEY) when the generator is built and again at each `generate`; it is never stored,
logged, part of a fingerprint, or shown in an error (any echo of it in a server's answer is replaced by
"[redacted]"). It is sent over `https://` anywhere, and over plain `http://` only to a loopback host
(127.0.0.0/8, ::1, localhost), which is then reached directly, never through an HTTP_PROXY from the
environment. Anything else is refused with `InsecureTransportError`, unless you opt in for a network you
trust with `allow_insecure_http=True` or the environment variable OFFLINE_ARENA_ALLOW_INSECURE_HTTP=1.
Without a key, plain http is allowed anywhere: there is nothing to leak.

Also here: each generator's event loop (`_Session`), with its router and one HTTP client per replica.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Callable
from urllib.parse import urlsplit

from ..spec import is_loopback
from .retries import HTTPGenerationError
from .router import Replica, _Router

ALLOW_INSECURE_HTTP_ENV = "OFFLINE_ARENA_ALLOW_INSECURE_HTTP"
REDACTED = "[redacted]"


class InsecureTransportError(HTTPGenerationError):
    """The API key would travel unencrypted to a host that is not this machine."""


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


def http_client(base_url: str, concurrency: int, timeout_s: float):
    """The client for one replica, so each has its own connection limit and proxy rule."""
    import httpx

    url = urlsplit(base_url)
    # An HTTP_PROXY from the environment would carry a loopback request, key included, in the clear
    # to the proxy's host (and could not reach our loopback server anyway): loopback goes direct.
    direct = url.scheme == "http" and is_loopback(url.hostname)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(headers={"Content-Type": "application/json"}, timeout=timeout_s,
                             limits=limits, trust_env=not direct)


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
