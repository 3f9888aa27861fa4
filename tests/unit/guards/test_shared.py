"""Two replicas' guards on one real Redis enforce one limit; Redis lost mid-run and back.

A throwaway `redis-server` per test module (skipped, saying why, when there is none); each
test uses its own key prefix. Two `KeyRing`s / `BudgetTracker`s stand for two replicas.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from router.config import ApiKeyConfig, BudgetConfig, SharedStateConfig
from router.errors import BudgetExhausted, RateLimited, SharedStateUnavailable
from router.guards.auth import KeyRing, hash_key
from router.guards.budgets import BudgetTracker
from router.guards.counters import Window
from router.guards.gate import Call, Gate
from router.guards.shared import SharedCounters
from tests import redis_server
from tests.ports import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def shared(redis: redis_server.RedisServer, prefix: str, **options: object) -> SharedCounters:
    config = SharedStateConfig(url=redis.url, prefix=prefix, **options)
    return SharedCounters(config)


KEY = ApiKeyConfig(name="fleet-a", sha256=hash_key("secret"), scopes=["route"],
                   rate_per_minute=10, tokens_per_minute=1000)


def test_two_replicas_share_one_rate_limit(redis: redis_server.RedisServer) -> None:
    prefix, clock = f"{uuid.uuid4().hex[:8]}:", Clock()
    rings = [KeyRing(clock=clock, counters=shared(redis, prefix)) for _ in range(2)]
    passed = 0
    for i in range(30):
        try:
            rings[i % 2].authenticate([KEY], "secret", "route")
            passed += 1
        except RateLimited as exc:
            assert "limit of 10 requests per minute" in str(exc)
    assert passed == 10  # not 10 per replica
    alone = KeyRing(clock=clock)  # without shared state each process counts alone
    assert sum(_passes(alone) for _ in range(30)) == 10


def _passes(ring: KeyRing) -> bool:
    try:
        ring.authenticate([KEY], "secret", "route")
        return True
    except RateLimited:
        return False


def test_two_replicas_share_tokens_and_budgets(redis: redis_server.RedisServer) -> None:
    prefix, clock = f"{uuid.uuid4().hex[:8]}:", Clock()
    budget = BudgetConfig(name="team", api_keys=["fleet-a"], limit_usd=1.0)
    replicas = []
    for _ in range(2):
        counters = shared(redis, prefix)
        budgets = BudgetTracker([budget], clock=clock, counters=counters)
        replicas.append((Gate([KEY], budgets, counters, clock=clock), budgets))
    call = Call(entry="", api_key="fleet-a", role=None, tokens_in=300, tokens_out=100,
                out_field="max_tokens")
    for i in range(2):
        replicas[i][0].admit(Call(**{**call.__dict__, "entry": f"d{i}"}))
    with pytest.raises(RateLimited, match="limit of 1000 tokens per minute"):
        replicas[0][0].admit(Call(**{**call.__dict__, "entry": "d2"}))
    replicas[1][0].correct("fleet-a", "d0", 120, 30)  # the other replica's feedback frees 250
    replicas[0][0].admit(Call(**{**call.__dict__, "entry": "d2"}))
    replicas[0][1].add(None, 0.6, api_key="fleet-a")
    replicas[1][1].add(None, 0.5, api_key="fleet-a")
    with pytest.raises(BudgetExhausted, match="budget 'team' is spent"):
        replicas[0][0].admit(Call(**{**call.__dict__, "entry": "d3", "tokens_in": 1,
                                      "tokens_out": 1}))


def test_redis_lost_mid_run_local_keeps_routing_then_shares_again(
    redis: redis_server.RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:
    prefix, clock = f"{uuid.uuid4().hex[:8]}:", Clock()
    counters = [shared(redis, prefix, retry_s=0.01) for _ in range(2)]
    rings = [KeyRing(clock=clock, counters=c) for c in counters]
    assert sum(_passes(rings[i % 2]) for i in range(6)) == 6  # 6 of the shared 10
    redis.stop()
    with caplog.at_level(logging.ERROR, logger="router.guards.shared"):
        local = [sum(_passes(ring) for _ in range(15)) for ring in rings]
    assert local == [10, 10]  # per process now: the bound is N x the limit
    assert not counters[0].up and "unreachable" in caplog.text
    assert "routing under per-process limits" in counters[0].describe()
    redis.start()  # an empty Redis: the shared window starts afresh
    clock.now += 1.0
    assert sum(_passes(rings[i % 2]) for i in range(30)) == 10
    assert counters[0].up and counters[1].up
    assert counters[0].describe().startswith("limits and spend counted in redis://")


def test_refuse_when_redis_is_lost_then_let_through_again(
    redis: redis_server.RedisServer,
) -> None:
    counters = shared(redis, f"{uuid.uuid4().hex[:8]}:", on_unavailable="refuse", retry_s=0.01)
    ring, clock = KeyRing(counters=counters), Clock()
    budgets = BudgetTracker([BudgetConfig(name="fleet", limit_usd=5)], counters=counters)
    ring.authenticate([KEY], "secret", "route")
    redis.stop()
    with pytest.raises(SharedStateUnavailable, match="unreachable .* 'refuse'") as err:
        ring.authenticate([KEY], "secret", "route")
    assert err.value.retry_after >= 1
    gate = Gate([KEY], budgets, counters, clock=clock)
    with pytest.raises(SharedStateUnavailable):
        gate.admit(Call(entry="d", api_key=None, role=None, tokens_in=1, tokens_out=1,
                        out_field=None))
    budgets.add(None, 0.5)  # a write after a decision never refuses: counted locally
    assert counters.local.get([budgets.key(budgets.budgets[0], budgets.clock())]) == (0.5,)
    assert "refusing calls" in counters.describe()
    redis.start()
    ring.authenticate([KEY], "secret", "route")
    assert counters.up


def test_a_down_redis_costs_at_most_one_connect_per_retry_period(
    redis: redis_server.RedisServer,
) -> None:
    """While Redis is down, calls go straight to the local counters (no connect each time)."""
    config = SharedStateConfig(url=f"redis://127.0.0.1:{free_port()}/0",
                               retry_s=300)
    counters = SharedCounters(config)
    calls = []
    real = counters.remote.take

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    counters.remote.take = counting  # type: ignore[method-assign]
    for i in range(20):
        assert counters.take([Window("rpm:x", 100)], f"e{i}", 0.0).refused is None
    assert len(calls) == 1 and not counters.up
