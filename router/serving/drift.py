"""Drift watch: the realised tier mix and success rate of routed calls over a sliding window.

The knob (``quality_target``) means "route each call to the cheapest tier that will answer it
well with at least this probability". When traffic or models change, the realised success rate
drifts away from the target and the tier mix shifts; these gauges show it in ``/metrics``
without a query: they are computed from in-memory deques when Prometheus scrapes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

from prometheus_client import CollectorRegistry, Gauge

MAX_EVENTS = 200_000  # memory bound per deque, whatever the window


class DriftWindow:
    """Decisions (tier) and routed outcomes (quality) of the last `window_s` seconds."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self._decisions: deque[tuple[float, str]] = deque(maxlen=MAX_EVENTS)
        self._outcomes: deque[tuple[float, float]] = deque(maxlen=MAX_EVENTS)
        self._lock = threading.Lock()

    def decision(self, tier: str) -> None:
        with self._lock:
            self._decisions.append((self.clock(), tier))

    def outcome(self, quality: float) -> None:
        with self._lock:
            self._outcomes.append((self.clock(), quality))

    def _prune(self) -> None:
        edge = self.clock() - self.window_s
        for events in (self._decisions, self._outcomes):
            while events and events[0][0] < edge:
                events.popleft()

    def tier_share(self, tier: str) -> float:
        with self._lock:
            self._prune()
            n = len(self._decisions)
            return sum(1 for _, t in self._decisions if t == tier) / n if n else math.nan

    def success_rate(self) -> float:
        with self._lock:
            self._prune()
            n = len(self._outcomes)
            return sum(q for _, q in self._outcomes) / n if n else math.nan

    def counts(self) -> tuple[int, int]:
        with self._lock:
            self._prune()
            return len(self._decisions), len(self._outcomes)

    def register(
        self, registry: CollectorRegistry, target: Callable[[], float], tiers: Sequence[str]
    ) -> None:
        """Gauges read at scrape time; `target` follows the serving config."""
        share = Gauge("tier_router_window_tier_share",
                      "Share of decisions per tier over the drift window.", ["tier"],
                      registry=registry)
        for name in tiers:
            share.labels(name).set_function(partial(self.tier_share, name))
        Gauge("tier_router_window_success_rate",
              "Mean reported quality of routed calls over the drift window (NaN: no feedback).",
              registry=registry).set_function(self.success_rate)
        Gauge("tier_router_quality_target", "The configured quality_target (the knob).",
              registry=registry).set_function(target)
        Gauge("tier_router_window_decisions", "Decisions in the drift window.",
              registry=registry).set_function(lambda: self.counts()[0])
        Gauge("tier_router_window_feedback", "Routed outcomes in the drift window.",
              registry=registry).set_function(lambda: self.counts()[1])
        Gauge("tier_router_window_seconds", "Length of the drift window.",
              registry=registry).set_function(lambda: self.window_s)
