"""The model-health state alone, on a fake clock: window, circuit, cooldown, probes, latency."""

from __future__ import annotations

import json
import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from router.config import HealthConfig, Settings
from router.serving.model_health import ModelHealth
from router.traces.rows import Written

CONFIG = HealthConfig(window_s=60, min_calls=5, max_error_rate=0.5, cooldown_s=30,
                      probe_share=0.1)


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def health(config: HealthConfig = CONFIG) -> tuple[ModelHealth, Clock]:
    clock = Clock()
    return ModelHealth(config, ("a", "b", "gpt-4.1-nano", "gpt-4.1"), clock=clock, seed=0), clock


def test_min_calls_failures_in_a_row_open_the_circuit_even_after_a_clean_history() -> None:
    h, clock = health()
    for _ in range(40):
        h.record("a", True, 100)
    for i in range(CONFIG.min_calls):
        assert h.snapshot().of("a").state == "closed", f"opened after {i} failures"
        clock.t += 0.1
        h.record("a", False, kind="timeout")
    s = h.snapshot().of("a")
    assert s.state == "open" and s.retry_at == pytest.approx(clock.t + 30)
    assert s.why == "5 of 45 calls failed in the last 60 s (timeout 5)"


def test_an_error_rate_above_the_limit_opens_it_and_one_at_the_limit_does_not() -> None:
    h, _ = health()
    for ok in (True, False, True, False):  # 2 of 4: not enough calls yet
        h.record("a", ok, kind="server_error")
    h.record("a", True)  # 2 of 5 = 0.4
    assert h.snapshot().of("a").state == "closed"
    h.record("a", False, kind="rate_limited")  # 3 of 6 = 0.5: not above
    assert h.snapshot().of("a").state == "closed"
    h.record("a", False, kind="rate_limited")  # 4 of 7: above, but 4 failures < min_calls
    assert h.snapshot().of("a").state == "closed"
    h.record("a", False, kind="rate_limited")  # 5 of 8: min_calls failed calls
    s = h.snapshot().of("a")
    assert s.state == "open" and (s.calls, s.errors) == (8, 5)
    assert "rate_limited 3" in (s.why or "") and "server_error 2" in (s.why or "")


def test_failures_older_than_the_window_do_not_count() -> None:
    h, clock = health()
    for _ in range(4):
        h.record("a", False, kind="timeout")
    clock.t += 61
    h.record("a", False, kind="timeout")
    s = h.snapshot().of("a")
    assert (s.state, s.calls) == ("closed", 1)


def test_cooldown_then_half_open_then_a_good_probe_closes_and_forgets() -> None:
    h, clock = health()
    for _ in range(5):
        h.record("a", False, kind="timeout")
    opened = clock.t
    clock.t += 29
    assert h.snapshot().of("a").state == "open"
    h.record("a", True, 80, at=opened + 1)  # late news of a call made during the outage
    assert h.snapshot().of("a").state == "open"
    clock.t = opened + 30
    assert h.snapshot().of("a").state == "half_open"
    h.record("a", True, 90, at=clock.t)  # a probe decided after the cooldown
    s = h.snapshot().of("a")
    assert (s.state, s.calls, s.errors, s.retry_at) == ("closed", 1, 0, None)


def test_late_failures_of_calls_made_before_the_circuit_closed_change_nothing() -> None:
    h, clock = health()
    for _ in range(5):
        h.record("a", False, at=clock.t, kind="timeout")
    outage = clock.t
    clock.t += 31
    h.record("a", True, 90, at=clock.t)  # the probe closes it
    clock.t += 10
    for _ in range(5):  # the outage's timeouts, reported 40 s late
        h.record("a", False, at=outage, kind="timeout")
    s = h.snapshot().of("a")
    assert (s.state, s.calls, s.errors) == ("closed", 1, 0)
    h.record("a", False, at=clock.t, kind="timeout")  # a new call's failure counts
    clock.t += 1
    assert h.snapshot().of("a").errors == 1


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    h, clock = health()
    for _ in range(5):
        h.record("a", False, kind="server_error")
    clock.t += 31
    h.record("a", False, at=clock.t, kind="server_error")
    s = h.snapshot().of("a")
    assert s.state == "open" and s.retry_at == pytest.approx(clock.t + 30)
    assert s.why == "a probe after the cooldown failed (server_error)"


def test_latency_percentiles_come_from_successful_calls_in_the_window() -> None:
    h, clock = health()
    for ms in range(1, 101):
        h.record("a", True, float(ms))
    h.record("a", False, 99_999, kind="timeout")  # a timeout's latency is not the model's
    clock.t += 1
    s = h.snapshot().of("a")
    assert s.p50_ms == pytest.approx(50.5) and s.p95_ms == pytest.approx(95.05)
    assert s.latency_calls == 100
    assert h.snapshot().of("never-seen").p50_ms is None


def stored(**row: object) -> Written:
    return Written("stored", dict(row))


def test_observe_counts_only_the_providers_failures_against_the_model_used() -> None:
    h, clock = health()
    decision = {"model": "a", "created_at": 1_000.0}
    for kind in ("bad_request", "auth", "content_filter", "other"):
        h.observe(stored(model_used="a", error=kind, latency_ms=5), decision)
    assert h.snapshot().of("a").calls == 0
    h.observe(stored(model_used="b", error="timeout"), decision)  # the fallback it used
    h.observe(stored(model_used=None, error=None, latency_ms=12.0), decision)
    h.observe(stored(model_used="a", quality=1.0), decision)  # a label alone: nothing
    h.observe(stored(model_used="a", error="timeout"), None)  # a trace without a decision
    h.observe(stored(model_used="made-up", error="timeout"), decision)  # not configured
    h.observe(Written("duplicate", {"model_used": "a", "error": "timeout"}), decision)
    clock.t += 1  # outcomes that open no circuit show in the next snapshot (cached STATS_S)
    view = h.snapshot()
    assert (view.of("b").calls, view.of("b").errors) == (1, 1)
    assert (view.of("a").calls, view.of("a").errors, view.of("a").p50_ms) == (1, 0, 12.0)
    assert "made-up" not in view.models


def test_a_later_report_counts_only_if_the_first_said_nothing_about_the_provider() -> None:
    h, clock = health()
    decision = {"model": "a", "created_at": 1_000.0}
    label = {"model_used": "a", "quality": 1.0, "error": None, "latency_ms": None}
    h.observe(Written("stored", label), decision)  # a grader first: nothing yet
    h.observe(Written("completed", {**label, "error": "timeout"}, {"error": "timeout"},
                      before=label), decision)  # then the gateway's error: counted
    gateway = {"model_used": "a", "error": None, "latency_ms": 300.0}
    h.observe(Written("completed", {**gateway, "quality": 0.0}, {"quality": 0.0},
                      before=gateway), decision)  # a label after a counted report: not again
    clock.t += 1
    s = h.snapshot().of("a")
    assert (s.calls, s.errors) == (1, 1)


def test_a_reload_forgets_models_no_longer_configured() -> None:
    h, clock = health()
    for _ in range(5):
        h.record("a", False, kind="timeout")
        h.record("b", False, kind="timeout")
    h.configure(CONFIG, ["a"])
    assert h.snapshot().of("a").state == "open" and "b" not in h.snapshot().models


def test_disabled_health_records_nothing_and_gives_no_view() -> None:
    h, _ = health(HealthConfig(enabled=False))
    h.record("a", False, kind="timeout")
    assert h.decision_view() is None and h.snapshot().models == {}


def test_decision_views_draw_seeded_probes() -> None:
    draws = [health()[0].decision_view() for _ in range(2)]
    assert draws[0] is not None and draws[1] is not None
    assert draws[0].probe == draws[1].probe and 0 <= draws[0].probe < 1


def test_gauges_list_every_configured_model(settings: Settings) -> None:
    h, _ = health()
    for _ in range(5):
        h.record("gpt-4.1-nano", False, kind="timeout")
    h.record("gpt-4.1", True, 250.0)
    registry = CollectorRegistry()
    h.register(registry, lambda: settings)
    text = generate_latest(registry).decode()
    assert ('tier_router_model_circuit_state{model="gpt-4.1-nano",state="open",tier="small"} 1.0'
            in text)
    assert ('tier_router_model_circuit_state{model="gpt-4.1-mini",state="closed",tier="medium"} '
            '1.0' in text)
    assert 'tier_router_model_error_rate{model="gpt-4.1-nano",tier="small"} 1.0' in text
    assert ('tier_router_model_latency_ms{model="gpt-4.1",quantile="0.5",tier="large"} 250.0'
            in text)
    assert 'tier_router_model_window_calls{model="claude-3-7-sonnet-20250219",tier="large"} 0.0' \
        in text
    assert not math.isnan(h.snapshot().of("gpt-4.1").p50_ms or math.nan)


def outcome_of(decision_id: str, key: str | None, models: list[str]) -> tuple[Written, dict]:
    """A stored report on `decision_id` (made with `key`) whose chain timed out on `models`."""
    attempts = [{"model": m, "error": "timeout"} for m in models]
    row = {"model_used": models[-1], "error": "timeout", "latency_ms": None, "tokens_out": None,
           "extra": json.dumps({"attempts": attempts})}
    decision = {"decision_id": decision_id, "created_at": 1_000.0, "model": models[0],
                "api_key": key}
    return Written("stored", row), decision


def test_a_model_counts_once_per_report_however_often_it_is_named() -> None:
    h, _ = health()
    h.keys = 2
    written, decision = outcome_of("d1", "k1", ["a", "a", "a", "b", "b", "a"] * 2)
    h.observe(written, decision)
    s = h.snapshot()
    assert (s.of("a").errors, s.of("b").errors) == (1, 1)


def test_one_decision_reported_over_and_over_never_opens_a_circuit() -> None:
    h, _ = health()
    for _ in range(20):  # the same call's failure recorded again and again
        h.record("a", False, kind="timeout", source=("d1", "k1"))
    assert h.snapshot().of("a").state == "closed"
    for i in range(2, CONFIG.min_calls + 1):  # min_calls distinct decisions (open: one key)
        h.record("a", False, kind="timeout", source=(f"d{i}", "k1"))
    assert h.snapshot().of("a").state == "open"


def test_with_several_keys_one_keys_failures_alone_never_open_it() -> None:
    """health.min_keys (2): one caller cannot take a model down for the others."""
    h, _ = health()
    h.keys = 3
    for i in range(30):
        h.record("a", False, kind="timeout", source=(f"d{i}", "k1"))
    assert h.snapshot().of("a").state == "closed"
    h.record("a", False, kind="timeout", source=("e1", "k2"))
    assert h.snapshot().of("a").state == "open"


def test_min_keys_applies_only_with_more_than_one_key() -> None:
    h, _ = health(CONFIG.model_copy(update={"min_keys": 3}))
    h.keys = 1
    assert h.required_keys == 1
    h.keys = 4
    assert h.required_keys == 3
