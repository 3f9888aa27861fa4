"""Clocks a test moves by hand, so nothing in the suite sleeps to let time pass."""

from __future__ import annotations

import time


class Clock:
    """Seconds that stand still until the test moves them (`t`, or `advance`)."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class SkippingClock:
    """Epoch seconds that run with real time, plus what the test skipped: for a component of
    a running app whose times are compared with the real ones of other components."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped

    def advance(self, seconds: float) -> None:
        self.skipped += seconds
