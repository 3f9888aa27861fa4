"""Prometheus metrics of one app instance (own registry, so tests and reloads never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0)


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
