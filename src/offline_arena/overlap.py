"""Calls that wait on other machines, overlapped from the driver (the contestants of a battle, judge chunks).

The waiting is network waiting — the requests themselves are asyncio, inside each endpoint's generator
(models/openai/) — so plain threads suffice to have several such calls under way at once; results
still come back to the calling thread, which is the one that commits them to the store. The threads are
daemons: Ctrl-C, or a crash, never waits for an endpoint that hangs.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def as_done(calls: Sequence[Callable[[], T]], at_once: int) -> Iterator[tuple[int, T]]:
    """(index, result) of every call, as each finishes, with at most `at_once` running; `at_once` 1 runs
    them one after another in the calling thread. After a call fails no new one starts, those running
    still finish and their results are still yielded (so the caller can keep them), then the first error
    is raised."""
    if at_once < 1:
        raise ValueError(f"at_once must be >= 1, got {at_once}")
    if at_once == 1 or len(calls) <= 1:
        for index, call in enumerate(calls):
            yield index, call()
        return
    pending = iter(range(len(calls)))
    take = threading.Lock()
    stop = threading.Event()
    finished: queue.Queue = queue.Queue()

    def worker() -> None:
        while not stop.is_set():
            with take:
                index = next(pending, None)
            if index is None:
                break
            try:
                finished.put((index, True, calls[index]()))
            except BaseException as error:  # handed to the caller's thread, which raises it
                stop.set()
                finished.put((index, False, error))
        finished.put(None)  # this worker is done

    workers = min(at_once, len(calls))
    for n in range(workers):
        threading.Thread(target=worker, name=f"overlap-{n}", daemon=True).start()
    first_error: BaseException | None = None
    try:
        while workers:
            item = finished.get()
            if item is None:
                workers -= 1
                continue
            index, ok, value = item
            if ok:
                yield index, value
            elif first_error is None:
                first_error = value
    finally:
        stop.set()  # the caller stopped early (its own error, Ctrl-C): start nothing more
    if first_error is not None:
        raise first_error
