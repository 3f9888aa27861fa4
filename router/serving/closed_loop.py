"""The closed loop of one running service: trace store, budget spend, exploration, drift.

`ServiceHolder` owns one `ClosedLoop` for the life of the process: it is started with the
first service, `configure`d with the settings of every service a reload builds (so spend and
the store survive reloads), handed to each service as its recorder, and closed (queue flushed)
on shutdown. The store's URL is read once at start; a reload that changes ``store`` takes
effect at the next restart. What a /feedback report does with these state objects is
`router.serving.feedback.FeedbackService`'s; learning hears of it through `learn` alone.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

from router.config import Settings
from router.decision.categories import SHARED
from router.decision.choice import TierTable
from router.decision.features import CallView
from router.decision.map_view import WHYS, MapFilter, MapSummary, map_rows, roll_up, summarise
from router.decision.policy import ExplorationDraw
from router.errors import RequestLimitError, StoreError
from router.guards.budgets import BudgetTracker, spent_in_store
from router.guards.counters import Counters
from router.guards.shared import SharedCounters
from router.schemas import (
    MapCategory,
    MapPage,
    RouteDecision,
    RouteRequest,
    SpendEstimate,
    SpendReport,
    SpendRow,
)
from router.serving.learner import Learner
from router.serving.model_health import ModelHealth
from router.serving.model_health_redis import RedisHealth
from router.serving.run_keeper import RunKeeper
from router.traces.escalations import escalation_report, period_calls
from router.traces.estimate import EstimateLimits, spend_estimate
from router.traces.evidence import call_counts
from router.traces.rows import Seen
from router.traces.run_records import run_costs
from router.traces.shadow import shadow_report
from router.traces.store import StoreMetrics, TraceStore

log = logging.getLogger(__name__)

BUDGET_REFRESH_S = 15.0
TICK_S = 0.5
MAX_EVENTS = 200_000  # drift window: memory bound per deque, whatever the window


class ClosedLoop:
    """Everything that learns from or accounts for traffic, shared across reloads."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None,
                 shared: SharedCounters | None = None, counters: Counters | None = None):
        """`shared`: the Redis state (``shared_state``) that spend, run spend and model health
        are kept in, each built on it here; None: this process counts alone. `counters`: where
        budget spend is counted (the key ring's, so that one take reads it with the limits)."""
        self.settings = settings
        self.metrics = StoreMetrics(registry) if registry is not None else None
        self.store = TraceStore(settings.store, self.metrics) if settings.store.enabled else None
        self.budgets = BudgetTracker(settings.budgets, counters=counters or shared)
        self.runs = RunKeeper(settings, self.store, shared)  # run spend, caps, sticky, retention
        self.drift = DriftWindow(settings.drift_window_s)
        self.health = ModelHealth.of(settings)
        if shared is not None:
            self.health.share(RedisHealth(self.health, shared))
        if registry is not None:
            self.health.register(registry, lambda: self.settings)
            self.drift.register(registry, lambda: self.settings.quality_target,
                                settings.tier_names)
            if self.metrics is not None and self.store is not None:
                self.metrics.queue_depth.set_function(self.store.queue_depth)
            self._register_map(registry, settings.tier_names)
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self.learning: Learner | None = None
        self._summary: tuple[object, object, MapSummary] | None = None

    def start(self) -> ClosedLoop:
        if self.store is None:
            log.warning("trace store disabled (store.enabled: false): no feedback, no spend")
            return self
        self.store.start()
        self.refresh_budgets()
        self.runs.load()
        self._refresher = threading.Thread(target=self._refresh_loop, daemon=True,
                                           name="budget-refresh")
        self._refresher.start()
        return self

    def close(self) -> None:
        """Flush every queued decision and close the store."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(5)
        if self.store is not None:
            self.store.close()
        self.runs.close()

    def configure(self, settings: Settings) -> None:
        """Follow the settings of a (re)built service: its budgets (spend kept by name)."""
        self.settings = settings
        self.budgets.configure(settings.budgets)
        self.health.follow(settings)
        self.runs.configure(settings)

    def explorer(self, settings: Settings) -> Explorer | None:
        """A fresh seeded explorer for a service built from `settings`; None when neither
        exploration nor the learned map draws (the map's fractional allowance sends a share of
        a category's calls to a cheaper tier by the same logged draw, exploration or not)."""
        rate = settings.exploration_rate
        if not rate and not settings.learning.enabled:
            return None
        return Explorer(rate, settings.exploration_seed)

    def record(self, request: RouteRequest, view: CallView, decision: RouteDecision,
               seen: Seen | None = None) -> None:
        """Runs on the request thread: in-memory only, the store's part is an enqueue.
        Evaluation traffic (`dry_run`) is neither stored nor counted."""
        if request.dry_run:
            return
        self.drift.decision(decision.tier)
        self.budgets.add(request.role, decision.spend_estimate_usd, request.api_key)
        if self.store is not None:
            self.store.record(request, view, decision, seen)

    def learning_for(self, settings: Settings, dimension: int,
                     centroids: np.ndarray | None = None, cut: str = "") -> Learner | None:
        """The learned map a service built from `settings` reads (None when off or without a
        store): kept across reloads while its config, tiers, dimension and the model's
        clusters stay, else rebuilt from the store's evidence (which a new model keeps:
        outcomes do not depend on it; its clusters, named by `cut`, are its own)."""
        config = settings.learning
        if not config.enabled or self.store is None:
            self.learning = None
            return None
        learner = self.learning
        bits = config.cluster_bits
        expected = "" if not bits else (cut if centroids is not None else f"hash{bits}")
        if learner is None or learner.config != config or (
                learner.tiers != tuple(settings.tier_names) or learner.dimension != dimension
                or learner.cut != expected):
            learner = Learner(config, settings.tier_names, dimension, self.store,
                              centroids=centroids, cut=cut).start()
            self.learning = learner
        return learner

    def reload_learning(self) -> None:
        """Rebuild the learned map from the store (start, after new outcomes, every
        refresh_s): what makes it survive a restart and replicas on one database converge."""
        if self.learning is not None:
            self.learning.rebuild()

    def reset_learning(self) -> dict[str, Any]:
        """Forget every outcome so far, for learning (the store keeps them); every replica
        follows at its next rebuild."""
        store = self._require_store()
        store.reset_learning()
        if self.learning is not None:
            self.learning.reset()
        return self.learning_report()

    def map_page(self, where: MapFilter, limit: int, offset: int) -> MapPage:
        """One page of the learned map (router/decision/map_view.py) at the configured
        quality_target, with the calls decided since the last learning reset."""
        settings = self.settings
        learner = self.learning
        page = MapPage(enabled=learner is not None, quality_target=settings.quality_target,
                       tiers=settings.tier_names, offset=offset)
        if learner is None or self.store is None:
            return page
        if where.tier is not None and where.tier not in settings.tier_names:
            raise RequestLimitError("tier", f"'{where.tier}' is not one of the tiers "
                                            f"{settings.tier_names}", settings.tier_names)
        learned = learner.current()
        self.store.flush(timeout=2.0)
        counts = roll_up(call_counts(self.store, self.store.learning_reset_at()),
                         learner.config.category_fields, learner.tiers)
        total, shown = map_rows(learned, settings.quality_target, TierTable.of(settings),
                                counts, where, offset, limit,
                                tokens_out=settings.expected_output_tokens)
        more = offset + len(shown) < total
        return page.model_copy(update={
            "revision": learned.revision, "total": total,
            "next_offset": offset + len(shown) if more else None,
            "categories": [MapCategory(**r) for r in shown]})

    def map_summary(self) -> MapSummary | None:
        """The current map's summary for the dashboard, computed once per (map, settings)."""
        learner, settings = self.learning, self.settings
        if learner is None:
            return None
        learned = learner.map
        cached = self._summary
        if cached is None or cached[0] is not learned or cached[1] is not settings:
            summary = summarise(learned, settings.quality_target, TierTable.of(settings))
            self._summary = cached = (learned, settings, summary)
        return cached[2]

    def _register_map(self, registry: CollectorRegistry, tiers: Sequence[str]) -> None:
        """Gauges of the learned map, read at scrape time: tiers x reasons, never a label per
        category."""
        def count(tier: str, why: str) -> float:
            summary = self.map_summary()
            return float(summary.categories.get((tier, why), 0)) if summary else math.nan

        def part(name: str) -> float:
            summary = self.map_summary()
            return float(getattr(summary, name)) if summary else math.nan

        categories = Gauge("tier_router_map_categories", "Live categories of the learned map "
                           "by the tier they choose at quality_target and why (evidence, "
                           "prior, pin, cold).", ["tier", "why"], registry=registry)
        for tier in tiers:
            for why in WHYS:
                categories.labels(tier, why).set_function(partial(count, tier, why))
        Gauge("tier_router_map_saving", "Estimated saving against the strongest tier over the "
              "finest categories, weighted by their outcomes (nominal call, before exploration).",
              registry=registry).set_function(partial(part, "saving"))
        Gauge("tier_router_map_evidence_share", "Share of those outcomes in categories decided "
              "by their own evidence.", registry=registry).set_function(
                  partial(part, "evidence"))

    def forget_category(self, name: str) -> dict[str, Any]:
        """Forget one category (named as GET /map names it) and the finer ones under it;
        every replica follows at its next rebuild."""
        self._require_store()
        learner = self.learning
        if learner is None:
            raise RequestLimitError("category", "learning is off (learning.enabled: false)")
        namespace, _, path = name.partition("/")
        namespace = "" if namespace == "-" else namespace
        if namespace == SHARED or not learner.forget(namespace, path):
            raise RequestLimitError("category", f"no category '{name}' in the learned map's "
                                                "evidence (names as GET /map gives them)")
        return {"status": "forgotten", "category": name, "revision": learner.revision}

    def learning_report(self) -> dict[str, Any]:
        learner = self.learning
        if learner is None or self.store is None:
            return {"enabled": False}
        return {**learner.report(), "reset_at": self.store.learning_reset_at()}

    def learn(self, outcome: dict[str, Any], decision: dict[str, Any] | None) -> None:
        """Only a labelled outcome of a routed decision teaches; the store made it count once
        (the feedback service calls it once per stored label)."""
        learner = self.learning
        if learner is None or decision is None or outcome["quality"] is None:
            return
        try:
            learner.observe(outcome, decision)
        except StoreError as exc:  # the outcome is stored: a rebuild from it can follow
            log.warning("learned map: could not add an outcome's evidence: %s", exc)

    def check(self, decision: dict[str, Any], passed: bool, label: float | None = None
              ) -> None:
        """A routed decision's answer was checked (an escalation for a failed check, /verify,
        /feedback's check_passed): the learned map's check evidence hears it, once."""
        learner = self.learning
        if learner is None:
            return
        try:
            learner.observe_check(decision, passed, label)
        except StoreError as exc:
            log.warning("learned map: could not add a check's evidence: %s", exc)

    def refresh_budgets(self) -> None:
        store = self.store
        if store is None or not self.budgets.budgets:
            return

        try:
            self.budgets.load(partial(spent_in_store, partial(_spend_rows, store)))
        except StoreError as exc:
            log.warning("budget refresh failed: %s", exc)

    def _refresh_loop(self) -> None:
        """Budgets, runs and the learned map kept current; a fault in one step is logged and
        the loop goes on (a dead thread would freeze the map and the budgets silently)."""
        last_budgets = last_learning = time.monotonic()
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            if now - last_budgets >= BUDGET_REFRESH_S:
                guarded("budget refresh", self.refresh_budgets)
                last_budgets = now
            guarded("run expiry", self.runs.tick)
            learner = self.learning
            if learner is not None and learner.due(now - last_learning):
                guarded("learned map rebuild", learner.rebuild)
                last_learning = now

    def _require_store(self) -> TraceStore:
        if self.store is None:
            raise StoreError("the trace store is disabled (store.enabled: false)")
        return self.store

    def spend(self, by: str, since: float | None = None, limit: int | None = None,
              offset: int = 0, estimate: EstimateLimits | None = None) -> SpendReport:
        """Spend including this replica's queued decisions (waits up to one flush); one page
        of `limit` rows after `offset` (the costliest first); with `estimate`, the current
        learned map's off-policy estimate within those limits (router/traces/estimate.py)."""
        store = self._require_store()
        store.flush(timeout=2.0)
        rows = store.spend(by, since, limit=None if limit is None else limit + 1, offset=offset)
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        return SpendReport(by=by, since=since, rows=[SpendRow(**r) for r in rows],
                           next_offset=offset + len(rows) if more else None,
                           shadow=shadow_report(store, self.settings, since),
                           runs=run_costs(store, since),
                           escalations=escalation_report(period_calls(store, since),
                                                         self.settings),
                           estimate=self.estimate(since, estimate) if estimate else None)

    def estimate(self, since: float | None, limits: EstimateLimits) -> SpendEstimate | None:
        """The current map's off-policy estimate over the window (None when learning is off)."""
        learner, store = self.learning, self._require_store()
        if learner is None:
            return None
        return spend_estimate(store, self.settings, learner.current(), learner.clusters, since,
                              limits)


def _spend_rows(store: TraceStore, by: str, since: float,
                keyed_traces: bool) -> list[dict[str, Any]]:
    return store.spend(by, since, keyed_traces=keyed_traces)


class Explorer:
    """Seeded, thread-safe exploration random numbers at a fixed rate (`policy.explore_step`)."""

    def __init__(self, rate: float, seed: int | None = None):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"The 'rate' parameter must be a float in [0, 1). Got {rate}.")
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> ExplorationDraw:
        with self._lock:
            return ExplorationDraw(self.rate, self._rng.random())


def best_score(scores: Any) -> float:
    """The best tier's predicted quality from a decision's stored scores (NaN if unknown)."""
    if isinstance(scores, str):
        try:
            scores = json.loads(scores)
        except ValueError:
            return math.nan
    values = [v for v in (scores or {}).values() if isinstance(v, int | float)]
    return float(max(values)) if values else math.nan


class DriftWindow:
    """Decisions (tier) and routed outcomes (quality, and the best tier's predicted quality of
    their decision) of the last `window_s` seconds.

    `quality_target` is relative (cheapest tier predicted at least quality_target x the best
    tier's quality), so the gauge to hold against it is the realised quality of routed calls
    over the quality their best tier was predicted to give: at or above the target when the
    scores are calibrated on this traffic, below it when they promise too much.
    """

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self._decisions: deque[tuple[float, str]] = deque(maxlen=MAX_EVENTS)
        self._outcomes: deque[tuple[float, float, float]] = deque(maxlen=MAX_EVENTS)
        self._lock = threading.Lock()

    def decision(self, tier: str) -> None:
        with self._lock:
            self._decisions.append((self.clock(), tier))

    def outcome(self, quality: float, best_predicted: float = math.nan) -> None:
        with self._lock:
            self._outcomes.append((self.clock(), quality, best_predicted))

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
            return sum(q for _, q, _ in self._outcomes) / n if n else math.nan

    def relative_quality(self) -> float:
        """Realised quality over the best tier's predicted quality, on outcomes that have both."""
        with self._lock:
            self._prune()
            pairs = [(q, b) for _, q, b in self._outcomes if b == b and b > 0]
            best = sum(b for _, b in pairs)
            return sum(q for q, _ in pairs) / best if best > 0 else math.nan

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
        Gauge("tier_router_window_relative_quality",
              "Realised quality of routed calls over their best tier's predicted quality, over "
              "the drift window: compare with tier_router_quality_target (NaN: no feedback).",
              registry=registry).set_function(self.relative_quality)
        Gauge("tier_router_quality_target",
              "The configured quality_target (relative to the best tier's predicted quality).",
              registry=registry).set_function(target)
        Gauge("tier_router_window_decisions", "Decisions in the drift window.",
              registry=registry).set_function(lambda: self.counts()[0])
        Gauge("tier_router_window_feedback", "Routed outcomes in the drift window.",
              registry=registry).set_function(lambda: self.counts()[1])
        Gauge("tier_router_window_seconds", "Length of the drift window.",
              registry=registry).set_function(lambda: self.window_s)


def guarded(what: str, step: Callable[[], object]) -> None:
    """One step of the background loop; any fault is logged with its traceback."""
    try:
        step()
    except Exception:  # noqa: BLE001 - the loop must outlive any one step's fault
        log.exception("%s failed; the background loop goes on", what,
                      extra={"event": "background_fault", "step": what})
