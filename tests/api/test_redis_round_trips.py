"""Redis round trips per /route call with shared state, counted on the real client's socket.

A call with a key that has both per-minute limits, under a budget and a run cap, is the most a
call asks of Redis. Every command or pipeline redis-py sends is one `send_packed_command`, so
counting those counts round trips, whatever the scripts do inside Redis. Model health is off
here: its shared circuits are read at most every 50 ms, by the clock, not per call.

A call makes four: its run's cap read, one take for its requests and tokens per minute and its
budgets, its run's new spend, and its estimate into its budgets.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.connection

from router.config import BudgetConfig, Settings, SharedStateConfig
from tests import redis_server
from tests.api.test_hostile_reports import as_key, keyed
from tests.api.test_limits import client_for


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A counter of the round trips every redis-py connection makes."""
    count = [0]
    send = redis.connection.Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        send(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    return count


def limited(settings: Settings, server: redis_server.RedisServer) -> Settings:
    shared = SharedStateConfig(url=server.url, prefix=f"{uuid.uuid4().hex[:8]}:")
    s = keyed(settings, [BudgetConfig(name="fleet", limit_usd=100.0)], shared=shared,
              tpm=10**6, rpm=10**6)
    return s.model_copy(update={"runs": s.runs.model_copy(update={"max_cost_usd": 50.0}),
                                "health": s.health.model_copy(update={"enabled": False})})


def test_a_limited_call_under_a_budget_and_a_run_cap_makes_four_round_trips(
        settings: Settings, redis: redis_server.RedisServer, sends: list[int]) -> None:
    with client_for(limited(settings, redis)) as c:
        body = {"prompt": "say hello", "run_id": "r1"}
        for _ in range(3):  # scripts loaded, health read: what every later call finds
            assert c.post("/route", json=body, headers=as_key("agent")).status_code == 200
        sends[0] = 0
        calls = 20
        for _ in range(calls):
            assert c.post("/route", json=body, headers=as_key("agent")).status_code == 200
        print(f"round trips per /route call: {sends[0] / calls:g}")
        assert sends[0] == 4 * calls


def test_a_batch_makes_four_round_trips_per_item(
        settings: Settings, redis: redis_server.RedisServer, sends: list[int]) -> None:
    with client_for(limited(settings, redis)) as c:
        one = {"prompt": "say hello", "run_id": "warm"}
        for _ in range(3):
            assert c.post("/route", json=one, headers=as_key("agent")).status_code == 200
        sends[0] = 0
        batch = {"requests": [{"prompt": "say hello", "run_id": f"r{i}"} for i in range(8)]}
        assert c.post("/route/batch", json=batch, headers=as_key("agent")).status_code == 200
        print(f"round trips per /route/batch of 8: {sends[0]}")
        assert sends[0] == 4 * 8  # its requests per minute counted in each item's take
