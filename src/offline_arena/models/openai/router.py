"""Replicas. A model served by several replicas (`openai:http://h1/v1,http://h2/v1#name`; vLLM's
--data-parallel-size behind several ports, several hosts) is one generator: each request goes to the
least-loaded replica in the pool (fewest requests in flight, ties to the one named first), each replica
holding at most `concurrency`. A replica that fails a request (connection refused or dropped, timeout,
408/409/425/429/5xx, a malformed 200) leaves the pool for `cooldown_s` (longer if its Retry-After asks)
and the request is retried at once on another replica; the retry budget counts attempts on every replica.
Once its cool-down is over a replica is back in the pool but takes one request at a time until one is
answered (a replica that hangs then holds one request for `timeout_s`, not `concurrency` of them). Only
when no other replica is in the pool does a retry wait out the backoff (retries.py), and then it goes to the
least-loaded replica whatever its state. A 4xx other than those is the request's fault, not the replica's,
and is not retried anywhere. `replica_stats` counts each replica's answers and failures (logged after each
`generate` when there are several). With one URL all this reduces to the behaviour retries.py describes.
"""

from __future__ import annotations

import asyncio
import collections
import math
from dataclasses import dataclass
from typing import Callable


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
