"""Failures. A request is retried, up to `max_retries` times, after: an HTTP 408/409/425/429/5xx answer, a
timeout (no answer within `timeout_s`), a connection refused or dropped mid-answer, and a 200 answer whose
body is not a chat completion (not JSON, no choices, no message text). A server's Retry-After (seconds or
an HTTP date) is honoured up to `max_retry_after_s`; otherwise the wait is exponential, `backoff_s`
doubled each retry up to `max_backoff_s`, with "equal jitter" (a random point in the upper half of that
ceiling). Any other answer (400, 401, 404, ...), or the last failed retry, raises `HTTPGenerationError`
naming the URL, the number of attempts and what the server said; the other requests of the batch are then
cancelled; with replicas, the error names each one tried and what it said last. A failure is never turned
into an empty answer, which a judge would count as a loss or a tie.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

# The 4xx answers that pass (timeout, conflict, too early, rate limit); any other 4xx is the request's fault.
RETRYABLE_4XX = {408, 409, 425, 429}


def retryable_status(status: int) -> bool:
    """Every 5xx is retried, as the openai client does (>= 500): gateways and hosted APIs answer transient
    failures with codes outside the standard four (507, Cloudflare's 520-524, 529 overloaded), and even a
    501 may come from one replica of several that runs another server version, or from a proxy in between.
    A 5xx that is in fact permanent costs `max_retries` bounded retries before the same clear error."""
    return status in RETRYABLE_4XX or 500 <= status <= 599


class HTTPGenerationError(RuntimeError):
    pass


class MalformedAnswer(ValueError):
    """A 200 answer whose body is not a chat completion (a gateway's error page, a truncated proxy reply,
    an `{"error": ...}` object): retried like a 5xx, since it is the server's fault, not the request's."""


@dataclass
class _Failed:
    """One attempt that got no completion."""

    problem: str
    retry_after: str | None = None
    retryable: bool = True  # False: the request's fault (a 4xx), so no other replica would do better


def asked_wait_s(retry_after: str | None, max_retry_after_s: float) -> float | None:
    """How long a Retry-After asks the replica be left alone, capped; None if it asks nothing readable."""
    asked = _retry_after_seconds(retry_after)
    return None if asked is None else min(asked, max_retry_after_s)


def retry_delay(attempt: int, retry_after: str | None, backoff_s: float, max_backoff_s: float,
                max_retry_after_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...)."""
    asked = _retry_after_seconds(retry_after)
    if asked is not None:
        return min(asked, max_retry_after_s)  # the server knows its load; a cap keeps a run moving
    ceiling = min(backoff_s * 2 ** (attempt - 1), max_backoff_s)
    # Equal jitter: clients that failed together spread out, yet none retries at once.
    return ceiling / 2 + rng.random() * ceiling / 2


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
