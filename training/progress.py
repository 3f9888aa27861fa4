"""Progress of a long step, with an ETA: a tqdm bar on a terminal, log lines anywhere else.

A bar redrawn a hundred times is noise in a log file, but a run of twenty minutes with no word
at all looks hung: when stderr is not a terminal, one INFO line at each tenth of the work says
how far it is, how fast it goes and when it should end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO

log = logging.getLogger(__name__)

STEPS = 10  # log lines per task when stderr is not a terminal


class Progress:
    """Counts units of work done out of `total`; `update(n)` after each piece, `close()` at the
    end (or use it as a context manager)."""

    def __init__(self, total: int, desc: str, unit: str = "item",
                 stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = 0
        self._clock = clock
        self._start = clock()
        self._next_line = 1
        stream = stream or sys.stderr
        self._bar = None
        if total > 0 and bool(getattr(stream, "isatty", lambda: False)()):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if self.total <= 0 or self.done * STEPS < self._next_line * self.total:
            return
        while self._next_line * self.total <= self.done * STEPS:
            self._next_line += 1
        log.info("%s", self.line())

    def line(self) -> str:
        """`desc: done/total unit (pct%), rate/s, elapsed, ETA`."""
        elapsed = self._clock() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = "done" if self.done >= self.total else f"ETA {_duration(left)}"
        speed = f"{rate:.1f}/s" if rate >= 1 else f"{rate * 60:.1f}/min"
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}s "
                f"({100 * self.done / self.total:.0f}%), {speed}, "
                f"{_duration(elapsed)} elapsed, {eta}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan: no rate yet
        return "?"
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
