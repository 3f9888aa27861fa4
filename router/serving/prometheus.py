"""Prometheus metrics of one app instance (own registry, so tests and reloads never collide).

Every counter an alert can watch has its series from start-up, at 0, for every label value
known then (the configured tiers, every decision reason, error kinds, feedback statuses, the
store's drop reasons, the budgets' roles): an alert on ``increase(...) > 0`` then reads 0, not
"no data", until the first event. `zero_series` is called again on each reload (new tiers).
"""

from __future__ import annotations

from typing import Protocol, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from router.config import Settings
from router.schemas import FeedbackReceipt
from router.schemas.route import Reason

LATENCY_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0)
REASONS = get_args(Reason)
FEEDBACK_STATUSES = get_args(FeedbackReceipt.model_fields["status"].annotation)
DROP_REASONS = ("queue_full", "closed")  # TraceStore._count_drop's `why` values
RELOAD_OUTCOMES = ("ok", "refused")
NO_ROLE = "none"  # the role label of calls that named no role
OTHER_ROLES = "other"  # beyond MAX_ROLES distinct roles (labels must stay bounded)
MAX_ROLES = 100
MAX_LABEL_CHARS = 64  # a caller's string as a label: this long at most, printable ASCII only
_PRINTABLE = frozenset(range(0x20, 0x7F))


def label_text(text: str) -> str:
    """A caller's string as a metric label: printable ASCII (others as '?'), at most
    MAX_LABEL_CHARS (cut with '~'): no NUL, emoji or control characters reach a scraper."""
    clean = "".join(c if ord(c) in _PRINTABLE else "?" for c in text[:MAX_LABEL_CHARS + 1])
    return clean if len(clean) <= MAX_LABEL_CHARS else clean[:MAX_LABEL_CHARS - 1] + "~"


class StoreCounters(Protocol):
    """The trace store's counters (`router.traces.store.StoreMetrics`), as seeded here."""

    @property
    def dropped(self) -> Counter: ...

    @property
    def feedback(self) -> Counter: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "tier_router_decisions_total", "Routing decisions by tier and reason.",
            ["tier", "reason"], registry=self.registry,
        )
        self.latency = Histogram(
            "tier_router_route_latency_seconds", "Time to answer one /route call.",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "tier_router_errors_total", "Requests answered with an error, by kind.",
            ["kind"], registry=self.registry,
        )
        self.degraded = Counter(
            "tier_router_degraded_total", "Decisions made without the model (fail_open).",
            registry=self.registry,
        )
        self.reloads = Counter(
            "tier_router_reloads_total", "Config/model reloads by outcome.",
            ["outcome"], registry=self.registry,
        )
        self.cache_hit_rate = Gauge(
            "tier_router_embedding_cache_hit_rate", "Share of texts served from the cache.",
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "tier_router_model_loaded", "1 when a verified model is serving.",
            registry=self.registry,
        )
        # Estimated cost of routed decisions by role, counted by the /route handler as budgets
        # count it (`spend_estimate_usd`: in shadow mode the caller's own model's); dry_run
        # calls not counted; reported costs are in /spend. Roles
        # are the callers' own strings: at most MAX_ROLES get a series, the rest `other`.
        self.spend = Counter(
            "tier_router_estimated_cost_usd_total",
            "Estimated cost (USD, config prices) of routed decisions, by role; dry_run calls "
            "not counted.", ["role"], registry=self.registry,
        )
        self.spend_roles: set[str] = set()

    def zero_series(self, settings: Settings, store: StoreCounters | None = None) -> None:
        """Create every known series at 0 (existing ones keep their counts). The error kinds
        are the API's (`router.api.errors.add_error_handlers` seeds them)."""
        for tier in settings.tier_names:
            for reason in REASONS:
                self.decisions.labels(tier, reason)
        for outcome in RELOAD_OUTCOMES:
            self.reloads.labels(outcome)
        for role in [NO_ROLE, *(label_text(b.role) for b in settings.budgets if b.role)]:
            if len(self.spend_roles) < MAX_ROLES:
                self.spend_roles.add(role)
                self.spend.labels(role)
        if store is not None:
            for why in DROP_REASONS:
                store.dropped.labels(why)
            for status in FEEDBACK_STATUSES:
                store.feedback.labels(status)

    def render(self) -> bytes:
        return generate_latest(self.registry)
