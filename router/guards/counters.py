"""Counters that limits and spend are kept in: a small interface, and its in-process form.

Two kinds of counter, both named by a string key:

- **windows**, for "at most N in any 60 seconds" limits (requests and tokens per minute). The
  algorithm is a *sliding log*: every charge is an entry (time, amount), the window's use is
  the sum of the entries of the last 60 seconds, and a charge that would take it over the limit
  is refused, with the time until enough old entries leave the window. It is exact, unlike a
  token bucket (a full bucket plus a minute of refill let up to twice the rate through in one
  minute) or a two-bucket sliding counter (an estimate); its memory is one entry per charge in
  the last minute, at most N per key for a requests limit.
- **sums**, for budget spend: a float per key, added to, read, and raised to at least a value
  (the trace store's figure, which survives a restart of whatever holds the counters).

`Counters` is the interface the guards use; `LocalCounters` keeps them in this process (no
shared state configured, or Redis unreachable under ``on_unavailable: local``), and
`router.guards.counters_redis.RedisCounters` in Redis for every replica. Anything else that must be
counted across replicas (run spend, model health) can be put on the same four operations.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60.0
SUM_TTL_S = 40 * 86400.0  # a sum key names its period; kept a little longer than a month


@dataclass(frozen=True)
class Window:
    """One sliding-window limit a charge must fit: at most `limit` in any `WINDOW_S` seconds.

    `amounts` are the parts of the charge, each its own entry (`part_name(entry, i)`), so that a
    part can later be set to what it really was (`Counters.amend`): a call's tokens are its
    input estimate and its reserved output, corrected one by one by its feedback."""

    key: str
    limit: int
    amounts: tuple[int, ...] = (1,)

    @property
    def amount(self) -> int:
        return sum(self.amounts)


def part_name(entry: str, index: int) -> str:
    """The entry name of a charge's `index`-th part."""
    return entry if index == 0 else f"{entry}.{index}"


@dataclass(frozen=True)
class Taken:
    """What a `take` did: `refused` is the index of the first window the charge did not fit
    (then nothing was charged anywhere) or None; `retry_after` the seconds until it would fit;
    `used` each window's use after the charge (before it, when refused); `values` the sums read."""

    refused: int | None
    retry_after: float
    used: tuple[int, ...]
    values: tuple[float, ...]


class Counters(Protocol):
    """Where limits and spend are counted; every method is one atomic step (one round trip)."""

    @property
    def where(self) -> str:
        """Where the counters live, in words (logs, /readyz)."""
        ...

    def take(self, windows: Sequence[Window], entry: str, now: float,
             reads: Sequence[str] = ()) -> Taken:
        """Charge every window, or none if one would go over; and read the sums `reads`."""
        ...

    def amend(self, key: str, member: str, amount: int, now: float) -> None:
        """Set a charge part still in window `key` to `amount` (gone already: nothing)."""
        ...

    def add(self, amounts: Mapping[str, float]) -> tuple[float, ...]:
        """Add to sums (negative corrects an estimate; a sum never goes below 0); new values."""
        ...

    def get(self, keys: Sequence[str]) -> tuple[float, ...]:
        """The sums' values (0 for an unknown key)."""
        ...

    def floor(self, values: Mapping[str, float]) -> None:
        """Raise each sum to at least its value (what the durable trace store says)."""
        ...


class SlidingLog:
    """The entries of one window key: (time, name, amount), oldest first, with their total."""

    def __init__(self) -> None:
        self.entries: deque[list] = deque()  # [stamp, name, amount]
        self.by_name: dict[str, list] = {}
        self.total = 0

    def expire(self, now: float) -> None:
        edge = now - WINDOW_S
        while self.entries and self.entries[0][0] <= edge:
            _, name, amount = self.entries.popleft()
            self.by_name.pop(name, None)
            self.total -= amount

    def wait(self, amount: int, limit: int, now: float) -> float:
        """Seconds until `amount` more fits under `limit` (entries leave the window in order)."""
        freed = 0
        for stamp, _, part in self.entries:
            freed += part
            if self.total - freed + amount <= limit:
                return max(stamp + WINDOW_S - now, 0.0)
        return WINDOW_S

    def add(self, name: str, amount: int, now: float) -> None:
        row = [now, name, amount]
        self.entries.append(row)
        self.by_name[name] = row
        self.total += amount

    def amend(self, name: str, amount: int) -> None:
        row = self.by_name.get(name)
        if row is not None:
            self.total += amount - row[2]
            row[2] = amount


class LocalCounters:
    """`Counters` in this process's memory, behind one lock (nothing slow is done under it)."""

    where = "this process"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # for sums' expiry only: windows use the `now` they are given
        self._lock = threading.Lock()
        self._logs: dict[str, SlidingLog] = {}
        self._sums: dict[str, tuple[float, float]] = {}  # key -> (value, expires at)

    def take(self, windows: Sequence[Window], entry: str, now: float,
             reads: Sequence[str] = ()) -> Taken:
        with self._lock:
            logs = [self._log(w.key, now) for w in windows]
            for i, (window, log) in enumerate(zip(windows, logs, strict=True)):
                if log.total + window.amount > window.limit:
                    return Taken(i, log.wait(window.amount, window.limit, now),
                                 tuple(g.total for g in logs), self._get(reads))
            for window, log in zip(windows, logs, strict=True):
                for index, amount in enumerate(window.amounts):
                    log.add(part_name(entry, index), amount, now)
            return Taken(None, 0.0, tuple(g.total for g in logs), self._get(reads))

    def amend(self, key: str, member: str, amount: int, now: float) -> None:
        with self._lock:
            log = self._logs.get(key)
            if log is not None:
                log.expire(now)
                log.amend(member, amount)

    def add(self, amounts: Mapping[str, float]) -> tuple[float, ...]:
        with self._lock:
            expires = self._clock() + SUM_TTL_S
            for key, amount in amounts.items():
                value = max(self._value(key) + amount, 0.0)
                self._sums[key] = (value, expires)
            return self._get(list(amounts))

    def get(self, keys: Sequence[str]) -> tuple[float, ...]:
        with self._lock:
            return self._get(keys)

    def floor(self, values: Mapping[str, float]) -> None:
        with self._lock:
            expires = self._clock() + SUM_TTL_S
            for key, value in values.items():
                if value > self._value(key):
                    self._sums[key] = (value, expires)
            self._prune()

    def used(self, key: str, now: float) -> int:
        """A window's use at `now` (for tests and reports)."""
        with self._lock:
            return self._log(key, now).total

    def _log(self, key: str, now: float) -> SlidingLog:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = SlidingLog()
        log.expire(now)
        return log

    def _value(self, key: str) -> float:
        value, expires = self._sums.get(key, (0.0, 0.0))
        return value if expires > self._clock() else 0.0

    def _get(self, keys: Sequence[str]) -> tuple[float, ...]:
        return tuple(self._value(k) for k in keys)

    def _prune(self) -> None:
        """Drop expired sums and empty windows (called from the periodic `floor`)."""
        now = self._clock()
        for key in [k for k, (_, expires) in self._sums.items() if expires <= now]:
            del self._sums[key]
        for key in [k for k, log in self._logs.items() if not log.entries]:
            del self._logs[key]
