"""Shared state for several replicas: Redis when it answers, and what to do when it does not.

`SharedCounters` is the `Counters` the guards get when the config has ``shared_state``. Every
operation goes to Redis (`RedisCounters`, one round trip). If Redis cannot be reached, the
config's ``on_unavailable`` decides: ``local`` answers from this process's own counters
(`LocalCounters`: per-process limits, so N replicas may let through up to N times a key's rate
and, until the trace store's refresh catches up, spend up to N times a budget), ``refuse``
refuses the call that needed a check (`SharedStateUnavailable`, a 429 naming the cause). Sums
(spend) are always added to the local counters too, so they are current when they are needed.
Writes that follow a decision (spend, token corrections) never refuse: they go to the local
counters and the log says so. Redis is tried again `retry_s` after a failure (one call pays
the connect timeout), and once it answers, its counters decide again. The change either way is
logged once, shown in ``/readyz`` (`describe`) and in ``tier_router_shared_state_up``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from router.config import SharedStateConfig
from router.errors import SharedStateUnavailable
from router.guards.counters import Counters, LocalCounters, Taken, Window
from router.guards.counters_redis import RedisCounters

log = logging.getLogger(__name__)

T = TypeVar("T")


def connect(config: SharedStateConfig) -> RedisCounters:
    """A client for `config.url` that fails fast: no retries of its own, short timeouts (a new
    connection is made at the next call, so a restarted Redis is picked up by itself)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        config.url, socket_timeout=config.timeout_s, socket_connect_timeout=config.timeout_s,
        retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
    )
    return RedisCounters(client, _safe_url(config.url), config.prefix)


class SharedCounters:
    """`Counters` in Redis, with this process's counters standing in as configured."""

    def __init__(self, config: SharedStateConfig, remote: Counters | None = None,
                 local: LocalCounters | None = None, clock: Callable[[], float] = time.monotonic):
        import redis

        self.config = config
        self.remote = remote if remote is not None else connect(config)
        self.local = local if local is not None else LocalCounters()
        self._errors: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
        self._clock = clock
        self._lock = threading.Lock()
        self.up = True
        self.since = time.time()
        self.last_error = ""
        self._retry_at = 0.0
        self._contact = 0.0  # when Redis last answered (monotonic)

    @property
    def where(self) -> str:
        return self.remote.where

    def register(self, registry: Any) -> None:
        """``tier_router_shared_state_up``: 1 while Redis answers, 0 while it does not. Read at
        scrape time without a round trip (a scrape runs on the event loop); traffic and
        /readyz (`probe`) keep it current."""
        from prometheus_client import Gauge

        Gauge("tier_router_shared_state_up",
              "1 while the shared state (Redis) answers; 0 while limits and spend are counted "
              "per process (on_unavailable: local) or calls are refused (refuse).",
              registry=registry).set_function(lambda: 1.0 if self.up else 0.0)

    def probe(self) -> bool:
        """Is Redis up? Pings it when nothing was heard from it for `retry_s` (so an idle
        replica's /readyz and gauge still notice an outage and a recovery)."""
        if self._clock() - self._contact >= self.config.retry_s:
            ping = getattr(self.remote, "ping", None)
            if ping is not None:
                self._call(lambda _: ping(), gate=False, local_done=True)
        return self.up

    def describe(self) -> str:
        """One line for /readyz: where the counters are and, when Redis is down, what happens."""
        self.probe()
        if self.up:
            return f"limits and spend counted in {self.where}"
        then = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        action = ("routing under per-process limits" if self.config.on_unavailable == "local"
                  else "refusing calls that need a limit or budget check (429)")
        return (f"{self.where} unreachable since {then} ({self.last_error}): {action} "
                f"(shared_state.on_unavailable: {self.config.on_unavailable})")

    def take(self, windows: Sequence[Window], entry: str, now: float,
             reads: Sequence[str] = ()) -> Taken:
        return self._call(lambda c: c.take(windows, entry, now, reads), gate=True)

    def amend(self, key: str, member: str, amount: int, now: float) -> None:
        self.local.amend(key, member, amount, now)
        self._call(lambda c: c.amend(key, member, amount, now), gate=False, local_done=True)

    def add(self, amounts: Mapping[str, float]) -> tuple[float, ...]:
        mine = self.local.add(amounts)
        return self._call(lambda c: c.add(amounts), gate=False, local_done=True,
                          done=mine)

    def get(self, keys: Sequence[str]) -> tuple[float, ...]:
        return self._call(lambda c: c.get(keys), gate=False)

    def floor(self, values: Mapping[str, float]) -> None:
        self.local.floor(values)
        self._call(lambda c: c.floor(values), gate=False, local_done=True)

    def call(self, remote: Callable[[Any], T], local: Callable[[], T]) -> T:
        """Another shared state's operation under the same up/down handling: `remote` given the
        Redis client while Redis answers, else `local` (never refused). Run spend uses it."""
        client = getattr(self.remote, "client", None)
        return self._call(lambda c: remote(client) if c is self.remote else local(), gate=False)

    def _call(self, op: Callable[[Counters], T], gate: bool, local_done: bool = False,
              done: Any = None) -> T:
        """`op` on Redis; when Redis is down, on the local counters (or refused, for a gate
        under ``refuse``). `local_done`: the caller already applied it locally (then `done` is
        its result)."""
        if self.up or self._clock() >= self._retry_at:
            try:
                result = op(self.remote)
            except self._errors as exc:
                self._down(exc)
            else:
                self._contact = self._clock()
                if not self.up:
                    self._back()
                return result
        if gate and self.config.on_unavailable == "refuse":
            retry = max(1, math.ceil(self._retry_at - self._clock()))
            raise SharedStateUnavailable(
                f"the shared limits store {self.where} is unreachable ({self.last_error}) and "
                "shared_state.on_unavailable is 'refuse': no call is let through that cannot "
                f"be counted against its key's and budgets' shared limits; retry in {retry} s",
                retry_after=retry)
        return done if local_done else op(self.local)

    def _down(self, exc: Exception) -> None:
        with self._lock:
            self._retry_at = self._clock() + self.config.retry_s
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            if not self.up:
                return
            self.up = False
            self.since = time.time()
        log.error("shared state unreachable, %s", self.describe(),
                  extra={"shared_state": self.where, "on_unavailable":
                         self.config.on_unavailable})

    def _back(self) -> None:
        with self._lock:
            if self.up:
                return
            self.up = True
            self.since = time.time()
        log.warning("shared state reachable again: limits and spend counted in %s", self.where,
                    extra={"shared_state": self.where})


def _safe_url(url: str) -> str:
    """The URL without a password, for logs and /readyz."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
