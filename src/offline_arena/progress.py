"""Progress on long work (decoding, judging, training, evaluation), on a terminal and in a log file alike.

On a terminal a tqdm bar. Anywhere else (`make run > log`, CI, a launched job's output) tqdm either stays
silent (`disable=None` hides it off a terminal) or fills the file with carriage-return redraws; there a
plain line goes to the `offline_arena.progress` logger at most every `every_s` seconds, with how far the
work got and roughly how long is left. Answering IFEval's 541 prompts takes half an hour on a laptop CPU:
it must not print nothing meanwhile.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

log = logging.getLogger(__name__)

LOG_EVERY_S = 30.0


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True, every_s: float = LOG_EVERY_S,
                 stream=None, clock: Callable[[], float] = time.monotonic):
    """A bar over `total` units of work: `update(n)`, `note(text)` (shown beside the count, e.g. a loss),
    `close()`; also a context manager. Nothing is shown when `enabled` is false or there is no work."""
    stream = stream or sys.stderr
    if not enabled or total <= 0:
        return _Silent()
    if _is_terminal(stream):
        return _TerminalBar(total, desc, unit, stream)
    return _LogLines(total, desc, unit, every_s, clock)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class _Bar:
    def update(self, n: int = 1) -> None:
        raise NotImplementedError

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent(_Bar):
    def update(self, n: int = 1) -> None:
        pass


class _TerminalBar(_Bar):
    def __init__(self, total: int, desc: str, unit: str, stream):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def note(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self._bar.close()


class _LogLines(_Bar):
    """One log line when at least `every_s` seconds passed since the last (so a fast loop prints little
    and a slow one a line per unit at most), and one at `close`."""

    def __init__(self, total: int, desc: str, unit: str, every_s: float, clock: Callable[[], float]):
        self.total, self.desc, self.unit, self.every_s, self.clock = total, desc, unit, every_s, clock
        self.done, self.started = 0, clock()
        self.last_line, self.last_note, self.finished = self.started, "", False

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.done < self.total and now - self.last_line >= self.every_s:
            self.last_line = now
            elapsed = now - self.started
            left = elapsed * (self.total - self.done) / self.done if self.done else None
            eta = f", about {_duration(left)} left" if left is not None else ""
            log.info(f"{self.desc}: {self.done}/{self.total} {self.unit}s ({self.done / self.total:.0%}) "
                     f"in {_duration(elapsed)}{eta}{self._suffix()}")

    def note(self, text: str) -> None:
        self.last_note = text

    def close(self) -> None:
        """The closing line (also when stopped early: it says how far the work got), with the latest note:
        a trainer logs the last loss after its last step."""
        if self.done and not self.finished:
            self.finished = True
            log.info(f"{self.desc}: {self.done}/{self.total} {self.unit}s in "
                     f"{_duration(self.clock() - self.started)}{self._suffix()}")

    def _suffix(self) -> str:
        return f"; {self.last_note}" if self.last_note else ""
