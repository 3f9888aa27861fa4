"""Model health shared by two replicas on one real Redis; Redis lost and back.

A throwaway `redis-server` for the module (skipped, saying why, when there is none); each test
uses its own key prefix. Two `ModelHealth`s shared through `RedisHealth` (each with its own
`SharedCounters`, as each replica has) on one fake clock stand for two replicas.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from router.config import HealthConfig, SharedStateConfig
from router.guards.shared import SharedCounters
from router.serving.model_health import ModelHealth
from router.serving.model_health_redis import REMOTE_REFRESH_S, RedisHealth
from tests import redis_server
from tests.clocks import Clock

CONFIG = HealthConfig(window_s=60, min_calls=4, max_error_rate=0.5, cooldown_s=30,
                      probe_share=0.1)
MODELS = ("a", "b")


def replicas(redis: redis_server.RedisServer, n: int = 2, **options: object
             ) -> tuple[list[ModelHealth], Clock]:
    clock = Clock()
    prefix = f"{uuid.uuid4().hex[:8]}:"
    out = []
    for i in range(n):
        health = ModelHealth(CONFIG, MODELS, clock=clock, seed=i)
        shared = SharedCounters(SharedStateConfig(url=redis.url, prefix=prefix,
                                                  **options),  # type: ignore[arg-type]
                                clock=clock)
        health.share(RedisHealth(health, shared))
        out.append(health)
    return out, clock


def shared_of(health: ModelHealth) -> SharedCounters:
    remote = health._remote
    assert isinstance(remote, RedisHealth)
    return remote.shared


def test_failures_on_two_replicas_open_one_circuit_for_both(
    redis: redis_server.RedisServer,
) -> None:
    (r1, r2), clock = replicas(redis)
    r1.record("a", False, kind="timeout")
    r2.record("a", False, kind="server_error")
    r1.record("a", False, kind="timeout")
    assert r2.snapshot().of("a").state == "closed"
    r2.record("a", False, kind="timeout")  # the 4th failure in total: neither saw 4 alone
    opened = clock.t
    for replica in (r1, r2):
        clock.t += REMOTE_REFRESH_S
        s = replica.snapshot().of("a")
        assert s.state == "open" and s.retry_at == pytest.approx(opened + 30)
        assert s.why == "4 of 4 calls failed in the last 60 s (server_error 1, timeout 3)"
        assert (s.calls, s.errors) == (4, 4)
    assert r1.snapshot().of("b").state == "closed"


def test_one_replicas_probe_closes_it_for_both_and_late_news_is_dropped(
    redis: redis_server.RedisServer,
) -> None:
    (r1, r2), clock = replicas(redis)
    outage = clock.t
    for _ in range(4):
        r1.record("a", False, at=outage, kind="timeout")
    clock.t += 31
    assert r2.snapshot().of("a").state == "half_open"
    r2.record("a", True, 120.0, at=clock.t)  # r2's probe succeeds
    clock.t += 5
    for _ in range(4):  # the outage's timeouts reported late, to r1
        r1.record("a", False, at=outage, kind="timeout")
    clock.t += REMOTE_REFRESH_S
    for replica in (r1, r2):
        s = replica.snapshot().of("a")
        assert (s.state, s.calls, s.errors, s.p50_ms) == ("closed", 1, 0, 120.0)


def test_latency_is_the_window_of_every_replicas_reports(
    redis: redis_server.RedisServer,
) -> None:
    (r1, r2), clock = replicas(redis)
    for ms in (100.0, 200.0, 300.0):
        r1.record("b", True, ms)
        r2.record("b", True, ms + 1000)
    clock.t += REMOTE_REFRESH_S
    s = r1.snapshot().of("b")
    assert (s.calls, s.latency_calls) == (6, 6)
    assert s.p50_ms == pytest.approx(700.0)  # (300 + 1100) / 2


def test_redis_lost_then_back(redis: redis_server.RedisServer,
                              caplog: pytest.LogCaptureFixture) -> None:
    (r1, r2), clock = replicas(redis, retry_s=0.01)
    r1.record("a", True, 50.0)
    redis.stop()
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(4):
                r1.record("a", False, kind="timeout")  # no exception: counted locally
        assert shared_of(r1).up is False and "unreachable" in caplog.text
        assert r1.snapshot().of("a").state == "open"  # this replica's own feedback decides
    finally:
        redis.start()
    clock.t += REMOTE_REFRESH_S  # past retry_s (0.01 s) and the outcomes' refresh
    r1.record("b", True, 10.0)
    assert shared_of(r1).up is True
    assert r1.snapshot().of("a").state == "closed"  # the shared state again (Redis restarted)


def test_shared_circuits_need_several_decisions_and_keys_too(
    redis: redis_server.RedisServer,
) -> None:
    """The Lua script applies the in-process rule: one decision, or one key's decisions alone
    (with several keys configured), open nothing."""
    (r1, r2), clock = replicas(redis)
    for replica in (r1, r2):
        replica.keys = 3
    for _ in range(6):
        r1.record("a", False, kind="timeout", source=("d1", "k1"))
    for i in range(6):
        r2.record("a", False, kind="timeout", source=(f"d{i + 2}", "k1"))
    clock.t += REMOTE_REFRESH_S
    assert r1.snapshot().of("a").state == "closed"
    r2.record("a", False, kind="timeout", source=("e1", "k2"))
    clock.t += REMOTE_REFRESH_S
    assert r1.snapshot().of("a").state == "open"
