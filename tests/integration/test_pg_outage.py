"""PostgreSQL stopped mid-run and started again, under the real app: /route keeps answering
(never a 5xx), /feedback answers 503 while the store cannot commit (so the client retries),
the decisions made meanwhile wait in the writer's queue, and once the server is back every
retried outcome is stored beside its decision and nothing that got a 2xx is lost.

Its own PostgreSQL server (the session's shared one must not be stopped), skipped with the
reason when none can be started here. Outcomes are synthetic."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from router.config import Settings, StoreConfig
from tests.api.test_feedback import client_for, route
from tests.conftest import own_postgres_server
from tests.pg_server import PostgresServer


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    yield from own_postgres_server()


def _feedback(c: TestClient, decision_id: str) -> int:
    return c.post("/feedback", json={"decision_id": decision_id, "quality": 1.0}).status_code


def test_an_outage_costs_no_answer_and_no_acknowledged_outcome(
    own_postgres: PostgresServer, settings: Settings,
) -> None:
    url = own_postgres.new_database("outage")
    store = StoreConfig(url=url, flush_interval_ms=20)
    with client_for(settings.model_copy(update={"store": store})) as c:
        before = [route(c, prompt=f"before {i}")["decision_id"] for i in range(5)]
        assert [_feedback(c, d) for d in before] == [201] * 5

        own_postgres.halt()
        during = []
        for i in range(10):
            r = c.post("/route", json={"prompt": f"during {i}"})
            assert r.status_code == 200, r.text  # routing never waits for the store
            during.append(r.json()["decision_id"])
        refused = c.post("/feedback", json={"decision_id": during[0], "quality": 1.0})
        assert refused.status_code == 503 and refused.json()["error"] == (
            "trace store unavailable"), refused.text

        own_postgres.resume()
        acknowledged = set(before)
        deadline = time.monotonic() + 30
        for decision_id in during:  # the client retries until the store is back
            while (status := _feedback(c, decision_id)) == 503 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert status == 201, status
            acknowledged.add(decision_id)
        assert _feedback(c, before[0]) == 200  # the first outcome: still there, a duplicate
        c.app.state.holder.loop.store.flush(10)

    with psycopg.connect(url) as conn:
        outcomes = {row[0] for row in conn.execute("SELECT decision_id FROM outcomes")}
        decisions = {row[0] for row in conn.execute("SELECT decision_id FROM decisions")}
    assert acknowledged <= outcomes  # nothing that got a 2xx is lost
    assert set(before) | set(during) <= decisions  # the queued decisions were written after
