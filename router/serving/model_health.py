"""Model health: each deployed model's reported outcomes over a window, and its circuit.

`/feedback` feeds it (`observe`: an `error` of timeout, rate_limited or server_error is a
failure of the model that was used, a latency or output tokens without an error a success,
other errors and a label alone are not counted; one count per decision); every decision
reads a `snapshot` (`router.decision.health_view.HealthView`) and the policy does the rest, so the
decision stays pure. The narrow interface, `record(model, ok,
latency_ms, at)` and `snapshot()`, is what a shared implementation has to provide for replicas
to agree: per model a sorted set of (time, outcome) and a hash holding the circuit's
`opened_at`, both updated by one atomic script per outcome, and the snapshot read back in one
round trip (see the README). This one is in-process: each replica judges from the feedback it
receives.

The circuit (`router.config.health.HealthConfig` says when): closed -> open when the model
fails too often; open -> half-open after `cooldown_s` (decisions probe it on `probe_share` of
the calls that would have had it); half-open -> closed on the first successful probe (its old
outcomes are forgotten), -> open again on a failed one. Only the outcome of a call decided
after the cooldown ended counts as a probe, and once a probe has closed the circuit the
outcomes of calls decided before it are dropped: late feedback on calls made during the
outage (a timeout is often reported long after the call) changes nothing.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from router.config import HealthConfig, Settings
from router.decision.health_view import HealthView, ModelState
from router.errors import RequestLimitError
from router.schemas import HEALTH_ERRORS, CircuitState, ModelHealthInfo
from router.traces.rows import Written

REFRESH_S = 0.5  # a snapshot is rebuilt at least this often (open -> half-open is by time)
STATS_S = 0.05  # and at most this often for new outcomes that change no circuit


class Remote(Protocol):
    """Model health kept where every replica reads it (`health_shared.RedisHealth`)."""

    def record(self, model: str, ok: bool, latency_ms: float | None, at: float | None,
               kind: str | None, source: Source = (None, None)) -> None: ...

    def snapshot(self, local: Callable[[], HealthView], fresh: bool = True) -> HealthView:
        """The shared state, or `local()` while it cannot be read; without `fresh`, the state
        last read (no round trip)."""
        ...


# Who reported an outcome: the decision it was about and the key that made that decision (None:
# not known, e.g. an outcome recorded directly; each such outcome is a source of its own).
Source = tuple[str | None, str | None]


@dataclass
class _Track:
    """One model's outcomes (reported at, ok, latency ms or NaN, error kind, decision, key) and
    its circuit."""

    events: deque[tuple[float, bool, float, str | None, str | None, str | None]]
    opened_at: float | None = None
    why: str | None = None
    closed_at: float = -math.inf  # when a probe last closed it


class ModelHealth:
    """Thread-safe per-model health; `clock` is epoch seconds (decisions' `created_at`)."""

    def __init__(self, config: HealthConfig, models: Iterable[str] = (),
                 clock: Callable[[], float] = time.time, seed: int | None = None):
        self.config = config
        self.models = frozenset(models)  # what `observe` tracks: the configured models
        self.clock = clock
        self._tracks: dict[str, _Track] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._view: HealthView | None = None
        self._built_at = -math.inf
        self._dirty = False
        self._remote: Remote | None = None
        self.keys = 0  # API keys configured: with more than one, failures need min_keys keys

    @classmethod
    def of(cls, settings: Settings) -> ModelHealth:
        """The model health a service built from `settings` starts with (seeded like its
        exploration)."""
        health = cls(settings.health, models_of(settings), seed=settings.exploration_seed)
        health.keys = len(settings.auth.keys)
        return health

    def follow(self, settings: Settings) -> None:
        """Follow a reloaded config (see `configure`)."""
        self.configure(settings.health, models_of(settings))
        self.keys = len(settings.auth.keys)

    @property
    def required_keys(self) -> int:
        """Distinct keys whose decisions must have failed before a circuit opens."""
        return self.config.min_keys if self.keys > 1 else 1

    def configure(self, config: HealthConfig, models: Iterable[str]) -> None:
        """Follow a reloaded config: outcomes and circuits of the models still configured are
        kept, the others forgotten."""
        with self._lock:
            self.config, self.models = config, frozenset(models)
            self._tracks = {m: t for m, t in self._tracks.items() if m in self.models}
            for track in self._tracks.values():
                track.events = deque(track.events, maxlen=config.max_events)
            self._view = None

    def observe(self, written: Written, decision: Mapping[str, Any] | None) -> None:
        """A /feedback report on a routed call, as health sees it: the failed links of its
        fallback chain (`attempts`), each against its own model, and the call of `model_used`,
        counted once per decision at the first report that says how the provider did (see
        `verdict`). A model counts at most once per report, however often the report names it;
        each outcome carries its decision and the key that made it, so that a circuit opens
        only on failures of several decisions (and keys: `_failing`). Only configured models
        are tracked (a client's made-up model names must not grow memory)."""
        if decision is None or written.status == "duplicate":
            return
        at = decision.get("created_at")
        source: Source = (decision.get("decision_id"), decision.get("api_key"))
        counted: set[str] = set()
        if written.status == "stored" or "extra" in written.added:  # the links, once
            for attempt in attempts_of(written.row):
                model = attempt.get("model")
                if (attempt.get("error") in HEALTH_ERRORS and model in self.models
                        and model not in counted):
                    counted.add(str(model))
                    self.record(str(model), False, None, at, attempt["error"], source)
        if written.before is not None and verdict(written.before) is not None:
            return  # an earlier report on this call already counted
        ok = verdict(written.row)
        # a shadow decision was not followed: its pick made no call (no model_used: no model)
        used = written.row.get("model_used") or (
            None if decision.get("shadow") else decision.get("model"))
        if ok is None or ok == "ignored" or used not in self.models or used in counted:
            return
        self.record(str(used), ok == "ok", written.row.get("latency_ms"), at,
                    written.row.get("error"), source)

    def share(self, remote: Remote) -> None:
        """Keep outcomes and circuits in shared state from now on (`health_shared.RedisHealth`);
        this process's own state stays current beside it and answers while it is lost."""
        self._remote = remote

    def record(self, model: str, ok: bool, latency_ms: float | None = None,
               at: float | None = None, kind: str | None = None,
               source: Source = (None, None)) -> None:
        """One call's outcome; `at` is when the call was decided (a probe only if after the
        cooldown), `kind` the error kind of a failure, `source` (decision, key) who says so."""
        if not self.config.enabled:
            return
        self._record(model, ok, latency_ms, at, kind, source)
        if self._remote is not None:
            self._remote.record(model, ok, latency_ms, at, kind, source)

    def _record(self, model: str, ok: bool, latency_ms: float | None, at: float | None,
                kind: str | None, source: Source) -> None:
        config = self.config
        with self._lock:
            now = self.clock()
            track = self._tracks.get(model)
            if track is None:
                track = self._tracks[model] = _Track(deque(maxlen=config.max_events))
            if at is not None and at < track.closed_at:
                return  # news of a call decided during the outage a probe already ended
            latency = float(latency_ms) if latency_ms is not None and ok else math.nan
            track.events.append((now, ok, latency, None if ok else (kind or "error"), *source))
            self._prune(track, now)
            self._dirty = True
            if track.opened_at is None:
                why = self._failing(track)
                if why is not None:
                    track.opened_at, track.why = now, why
                    self._view = None
            elif (at if at is not None else now) >= track.opened_at + config.cooldown_s:
                if ok:  # a successful probe: closed, the outage forgotten
                    track.opened_at, track.why, track.closed_at = None, None, now
                    track.events = deque([track.events[-1]], maxlen=config.max_events)
                else:
                    track.opened_at = now
                    track.why = f"a probe after the cooldown failed ({kind or 'error'})"
                self._view = None

    def _prune(self, track: _Track, now: float) -> None:
        edge = now - self.config.window_s
        while track.events and track.events[0][0] < edge:
            track.events.popleft()

    def _failing(self, track: _Track) -> str | None:
        """Why the circuit should open now, or None: the last min_calls calls all failed, or
        more than max_error_rate of at least min_calls calls in the window; either way, the
        failures come from at least min_calls decisions and `required_keys` keys, so that no
        one caller's reports can take a model down for the others."""
        config, events = self.config, track.events
        n = len(events)
        if n < config.min_calls:
            return None
        failed = [e for e in events if not e[1]]
        in_a_row = not any(events[-i][1] for i in range(1, config.min_calls + 1))
        if not in_a_row and len(failed) / n <= config.max_error_rate:
            return None
        decisions = len({e[4] if e[4] is not None else i for i, e in enumerate(failed)})
        keys = len({e[5] for e in failed})
        if decisions < config.min_calls or keys < self.required_keys:
            return None
        kinds = Counter(e[3] for e in failed)
        detail = ", ".join(f"{k} {c}" for k, c in sorted(kinds.items()))
        return f"{len(failed)} of {n} calls failed in the last {config.window_s:g} s ({detail})"

    def snapshot(self, fresh: bool = True) -> HealthView:
        """Every model's state now: the shared state's when there is one (this process's own
        while it cannot be read), else this process's. `fresh=False` never waits on the shared
        state (a scrape on the event loop): the state it last read."""
        if self._remote is not None and self.config.enabled:
            return self._remote.snapshot(self.local_snapshot, fresh)
        return self.local_snapshot()

    def local_snapshot(self) -> HealthView:
        """This process's own state (cached: rebuilt on a circuit change, else at most every
        STATS_S for new outcomes and at least every REFRESH_S)."""
        with self._lock:
            now = self.clock()
            age = now - self._built_at
            view = self._view
            if view is None or age >= REFRESH_S or (self._dirty and age >= STATS_S):
                view = self._view = self._build(now)
                self._built_at, self._dirty = now, False
            return view

    def decision_view(self) -> HealthView | None:
        """The snapshot with this decision's probe draw; None when health is off."""
        if not self.config.enabled:
            return None
        view = self.snapshot()
        with self._lock:
            probe = self._rng.random()
        return replace(view, probe=probe)

    def _build(self, now: float) -> HealthView:
        config = self.config
        models = {}
        for model, track in self._tracks.items():
            self._prune(track, now)
            models[model] = self._state(track, now)
        return HealthView(models, now, config.probe_share, config.min_calls)

    def _state(self, track: _Track, now: float) -> ModelState:
        return state_of(track.events, track.opened_at, track.why, self.config.cooldown_s, now)

    def report(self, settings: Settings) -> dict[str, ModelHealthInfo]:
        """Each configured model's health (GET /tiers), by model."""
        view = self.snapshot()
        return {m: info(m, view.of(m)) for t in settings.tiers for m in t.models}

    def register(self, registry: CollectorRegistry, settings: Callable[[], Settings]) -> None:
        """Gauges per configured model, read at scrape time (`settings` follows reloads)."""
        registry.register(_HealthCollector(self, settings))


def state_of(events: Iterable[tuple[Any, ...]], opened_at: float | None,
             why: str | None, cooldown_s: float, now: float) -> ModelState:
    """A model's state from its outcomes in the window (reported at, ok, latency ms or NaN,
    error kind, and maybe who reported it) and its circuit's `opened_at`."""
    events = list(events)
    errors = sum(1 for e in events if not e[1])
    latencies = np.array([e[2] for e in events if e[1] and e[2] == e[2]], dtype=float)
    p50 = p95 = None
    if latencies.size:
        p50, p95 = (float(v) for v in np.percentile(latencies, [50, 95]))
    state: CircuitState = "closed"
    retry_at = None
    if opened_at is not None:
        retry_at = opened_at + cooldown_s
        state = "open" if now < retry_at else "half_open"
    return ModelState(state, len(events), errors, int(latencies.size), p50, p95, retry_at, why)


def attempts_of(outcome: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failed links of the call's fallback chain, as stored in the outcome's `extra`."""
    extra = outcome.get("extra")
    if not extra:
        return []
    try:
        attempts = json.loads(extra).get("attempts") if isinstance(extra, str) else None
    except (ValueError, AttributeError):
        return []
    return [a for a in attempts or [] if isinstance(a, dict)]


def verdict(outcome: Mapping[str, Any]) -> str | None:
    """What an outcome row says about the provider: "failed" (timeout, rate_limited,
    server_error), "ignored" (another error: the caller's fault or unknown), "ok" (latency or
    output tokens came back, no error), or None (nothing: e.g. a grader's label alone)."""
    error = outcome.get("error")
    if error is not None:
        return "failed" if error in HEALTH_ERRORS else "ignored"
    if outcome.get("latency_ms") is not None or outcome.get("tokens_out") is not None:
        return "ok"
    return None


def chain_of(decision: Mapping[str, Any], settings: Settings) -> list[str]:
    """The models a decision's call could have tried: its model and what its fallbacks can
    hold (its tier's models and every stronger tier's), and in shadow mode the caller's own."""
    names = settings.tier_names
    tier = decision.get("tier")
    start = names.index(tier) if tier in names else len(names)
    chain = [decision.get("model"), *(m for t in settings.tiers[start:] for m in t.models)]
    if decision.get("shadow"):
        chain.append(decision.get("requested_model"))
    return [str(m) for m in dict.fromkeys(chain) if m]


def check_attempts(attempts: Iterable[Any], decision: Mapping[str, Any],
                   settings: Settings) -> None:
    """Refuse (422, naming the attempt) a fallback link outside the decision's chain: a report
    may speak of the models its call could have tried, not of any model it likes."""
    chain = chain_of(decision, settings)
    for i, attempt in enumerate(attempts):
        if attempt.model not in chain:
            raise RequestLimitError(
                f"attempts.{i}.model",
                f"{attempt.model!r} is not in this decision's chain (its model and the models "
                f"its fallbacks can hold: {', '.join(chain)})", chain)


def models_of(settings: Settings) -> list[str]:
    """The deployed models of every tier: the ones health tracks."""
    return [m for t in settings.tiers for m in t.models]


def info(model: str, s: ModelState) -> ModelHealthInfo:
    rate = s.error_rate
    return ModelHealthInfo(
        model=model, state=s.state,
        calls=s.calls, errors=s.errors, error_rate=None if rate is None else round(rate, 4),
        latency_p50_ms=None if s.p50_ms is None else round(s.p50_ms, 1),
        latency_p95_ms=None if s.p95_ms is None else round(s.p95_ms, 1),
        retry_at=None if s.retry_at is None else round(s.retry_at, 3), why=s.why)


class _HealthCollector(Collector):
    """tier_router_model_* gauges: circuit state, calls, errors, error rate, latency."""

    def __init__(self, health: ModelHealth, settings: Callable[[], Settings]):
        self.health = health
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self.health.snapshot(fresh=False)  # a scrape runs on the event loop
        labels = ["tier", "model"]
        state = GaugeMetricFamily("tier_router_model_circuit_state", "1 for the model's "
                                  "circuit state (closed, open, half_open).",
                                  labels=[*labels, "state"])
        calls = GaugeMetricFamily("tier_router_model_window_calls",
                                  "Outcomes reported in the health window.", labels=labels)
        errors = GaugeMetricFamily("tier_router_model_window_errors", "Of which timeout, "
                                   "rate_limited or server_error.", labels=labels)
        rate = GaugeMetricFamily("tier_router_model_error_rate", "Errors over outcomes in "
                                 "the health window (NaN: no outcome).", labels=labels)
        latency = GaugeMetricFamily("tier_router_model_latency_ms", "Latency of successful "
                                    "calls in the health window (NaN: none).",
                                    labels=[*labels, "quantile"])
        for tier in self.settings().tiers:
            for model in tier.models:
                s = view.of(model)
                for name in ("closed", "open", "half_open"):
                    state.add_metric([tier.name, model, name], float(s.state == name))
                calls.add_metric([tier.name, model], s.calls)
                errors.add_metric([tier.name, model], s.errors)
                r = s.error_rate
                rate.add_metric([tier.name, model], math.nan if r is None else r)
                for q, v in (("0.5", s.p50_ms), ("0.95", s.p95_ms)):
                    latency.add_metric([tier.name, model, q], math.nan if v is None else v)
        yield from (state, calls, errors, rate, latency)
