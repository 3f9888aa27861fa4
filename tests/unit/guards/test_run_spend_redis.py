"""Run spend shared by replicas on one real Redis: a run's cap holds whichever replica a call
reaches; Redis lost mid-run and back; a restarted Redis raised to the store's figures.

A throwaway `redis-server` per module (skipped, saying why, when there is none); each test its
own key prefix. Two `SharedRunSpend`s over two `SharedCounters` stand for two replicas."""

from __future__ import annotations

import time
import uuid

import pytest

from router.config import RunsConfig, SharedStateConfig
from router.errors import RunCeilingReached
from router.guards.run_spend import LocalRunSpend, check_run, run_key
from router.guards.run_spend_redis import SharedRunSpend
from router.guards.shared import SharedCounters
from router.schemas import RouteRequest
from tests import redis_server
from tests.clocks import Clock


def replica(redis: redis_server.RedisServer, prefix: str, expire_after_s: float = 3600.0,
            retry_s: float = 0.2, clock: Clock | None = None) -> SharedRunSpend:
    """One replica's run spend; `clock` (when given) times both its runs and its retries."""
    config = SharedStateConfig(url=redis.url, prefix=prefix, retry_s=retry_s)
    if clock is None:
        return SharedRunSpend(LocalRunSpend(expire_after_s), SharedCounters(config))
    return SharedRunSpend(LocalRunSpend(expire_after_s, clock=clock),
                          SharedCounters(config, clock=clock))


RUN = run_key("team-a", "run-7")


def test_two_replicas_see_one_runs_spend_and_its_cap(redis: redis_server.RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    a, b = replica(redis, prefix), replica(redis, prefix)
    a.add(RUN, 0.30, "large", "gpt-4.1")
    view = b.add(RUN, 0.05, "small", "gpt-4.1-nano")
    assert (round(view.spend_usd, 6), view.calls, view.model) == (0.35, 2, "gpt-4.1-nano")
    a.correct(RUN, -0.10)  # feedback on replica a: the real cost was lower
    seen = b.get(RUN)
    assert seen is not None and round(seen.spend_usd, 6) == 0.25 and seen.tier == "small"
    assert b.local.get(RUN) is not None and round(b.local.get(RUN).spend_usd, 6) == 0.05

    request = RouteRequest(prompt="next step", run_id="run-7", max_run_cost_usd=0.3)
    request.attribute_to("team-a")
    check_run(b, request, RunsConfig())  # 0.25 < 0.30
    a.add(RUN, 0.06, "large", "gpt-4.1")
    with pytest.raises(RunCeilingReached, match="run-7"):
        check_run(b, request, RunsConfig())  # replica b refuses what a spent
    assert b.get(run_key("team-b", "run-7")) is None  # another key's run-7 is another run


def test_redis_lost_keeps_local_run_spend_then_shares_again(
    redis: redis_server.RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    clock = Clock(time.time())
    a = replica(redis, prefix, clock=clock)
    a.add(RUN, 0.1, "large", "gpt-4.1")
    redis.stop()
    try:
        view = a.add(RUN, 0.2, "large", "gpt-4.1")  # no exception: the local state answers
        assert round(view.spend_usd, 6) == 0.3 and not a.shared.up
        assert round(a.get(RUN).spend_usd, 6) == 0.3
    finally:
        redis.start()
    clock.advance(0.3)  # past retry_s: Redis is tried again
    b = replica(redis, prefix)
    b.add(RUN, 0.05, None, None)
    assert a.shared.call(lambda c: True, lambda: False) and a.shared.up
    # the restarted (empty) Redis knows only what came after it
    assert round(a.get(RUN).spend_usd, 6) == 0.05


def test_a_restarted_redis_is_raised_to_the_stores_runs_never_lowered(
    redis: redis_server.RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    now = time.time()
    stored = {RUN: {"spend_usd": 0.4, "calls": 3, "tier": "large", "model": "gpt-4.1",
                    "started_at": now - 60, "last_call_at": now - 5},
              run_key("team-a", "run-8"): {"spend_usd": 0.1, "calls": 1, "tier": "small",
                                            "model": "gpt-4.1-nano", "started_at": now - 9,
                                            "last_call_at": now - 9}}
    a = replica(redis, prefix)
    a.add(run_key("team-a", "run-8"), 0.5, "small", "gpt-4.1-nano")  # Redis knows more
    b = replica(redis, prefix)
    assert b.load(stored) == 2
    assert round(b.get(RUN).spend_usd, 6) == 0.4 and b.get(RUN).calls == 3
    assert round(b.get(run_key("team-a", "run-8")).spend_usd, 6) == 0.5


def test_an_idle_run_is_over_at_once_and_its_key_expires_in_redis(
    redis: redis_server.RedisServer,
) -> None:
    """Idle for longer than expire_after_s, a run reads as over whatever Redis still holds, and
    its key carries that time to live, so Redis drops it by itself (Redis's own timer)."""
    clock = Clock(time.time())
    a = replica(redis, f"t{uuid.uuid4().hex[:8]}:", expire_after_s=1.0, clock=clock)
    a.add(RUN, 0.2, "large", "gpt-4.1")
    key = f"{a._prefix}run:team-a:run-7"
    assert 0 < a.shared.call(lambda c: c.pttl(key), lambda: -1) <= 1000
    clock.advance(0.9)
    assert a.get(RUN) is not None
    clock.advance(0.2)
    assert a.get(RUN) is None
