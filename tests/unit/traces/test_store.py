"""TraceStore on SQLite and on a real PostgreSQL server: queue, writer, durability, spend."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router.config import StoreConfig
from router.decision.features import view_of
from router.errors import ConfigError, FeedbackConflict, StoreError
from router.schemas import RouteDecision, RouteRequest
from router.traces.db import SCHEMA_VERSION, Database
from router.traces.rows import PendingDecision, prompt_hash
from router.traces.store import StoreMetrics, TraceStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'traces.db'}"
    server = request.getfixturevalue("postgres")
    return server.new_database(f"t_{uuid.uuid4().hex[:12]}")


def make_store(url: str, **config: object) -> TraceStore:
    cfg = StoreConfig(url=url, **{"flush_interval_ms": 5, **config})  # type: ignore[arg-type]
    return TraceStore(cfg, StoreMetrics(CollectorRegistry()))


@pytest.fixture
def store(store_url: str) -> Iterator[TraceStore]:
    s = make_store(store_url, prompt_storage="full").start()
    yield s
    s.close()


def routed(prompt: str = "say hello", role: str | None = "planner", cost: float = 0.001,
           tier: str = "small", **request: object) -> tuple[RouteRequest, RouteDecision]:
    req = RouteRequest(prompt=prompt, role=role, run_id="run-1", step="2", user="u1", **request)
    decision = RouteDecision(
        decision_id=uuid.uuid4().hex, tier=tier, model=f"{tier}-model", fallbacks=[],
        scores={"small": 0.9, "medium": 0.95, "large": 0.99}, reason="classifier",
        estimated_tokens_in=12, estimated_cost_usd=cost, router_version="test-v1",
    )
    return req, decision


def record(store: TraceStore, req: RouteRequest, decision: RouteDecision) -> None:
    store.record(req, view_of(req.chat()), decision)


def outcome(decision_id: str | None, feedback_id: str, quality: float = 1.0,
            cost: float | None = 0.002, body: str = "b1") -> dict:
    return {"feedback_id": feedback_id, "decision_id": decision_id, "received_at": time.time(),
            "body_sha256": body, "model_used": "small-model", "tier": "small",
            "quality": quality, "cost_usd": cost, "cost_estimated": 0 if cost else 1,
            "fallback_used": 0}


def test_decisions_reach_the_database(store: TraceStore) -> None:
    pairs = [routed(f"prompt {i}") for i in range(25)]
    for req, decision in pairs:
        record(store, req, decision)
    assert store.flush(5)
    assert store.counts()["decisions"] == 25
    row, pending = store.decision(pairs[3][1].decision_id)
    assert pending is None and row is not None
    assert row["tier"] == "small" and row["role"] == "planner" and row["user_id"] == "u1"
    assert row["router_version"] == "test-v1" and row["propensity"] == 1.0
    assert json.loads(row["scores"])["large"] == 0.99
    assert json.loads(row["features"])["tokens_in"] > 0
    assert row["prompt"] == "prompt 3"


@pytest.mark.parametrize("storage", ["full", "hash", "none"])
def test_prompt_storage(tmp_path: Path, storage: str) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}", prompt_storage=storage).start()
    req, decision = routed("a secret prompt")
    msg_req, msg_decision = RouteRequest(messages=[{"role": "user", "content": "hi"}]), \
        routed()[1]
    record(store, req, decision)
    record(store, msg_req, msg_decision)
    store.flush(5)
    row, _ = store.decision(decision.decision_id)
    msg_row, _ = store.decision(msg_decision.decision_id)
    store.close()
    assert row is not None and msg_row is not None
    if storage == "full":
        assert row["prompt"] == "a secret prompt"
        assert json.loads(msg_row["messages"]) == [{"role": "user", "content": "hi"}]
    else:
        assert row["prompt"] is None and msg_row["messages"] is None
    assert row["prompt_hash"] == (None if storage == "none" else prompt_hash(req.chat()))


def test_graceful_close_flushes_every_queued_decision(store_url: str) -> None:
    store = make_store(store_url, flush_interval_ms=200, batch_size=7).start()
    for i in range(300):
        record(store, *routed(f"p{i}"))
    store.close()  # no flush first: close itself must drain the queue
    reader = make_store(store_url).open()
    assert reader.counts()["decisions"] == 300
    reader.close()


def _stall_writer(store: TraceStore, release: threading.Event) -> None:
    """Make the writer wait for `release` before it takes anything from the queue."""
    original = store._next_batch

    def stalled() -> list:
        release.wait(10)
        return original()

    store._next_batch = stalled  # type: ignore[method-assign]


def test_full_queue_waits_block_ms_then_drops_and_counts(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}", queue_size=3, block_ms=40)
    release = threading.Event()
    _stall_writer(store, release)
    store.start()
    for i in range(3):
        record(store, *routed(f"p{i}"))
    started = time.perf_counter()
    record(store, *routed("one too many"))
    waited = time.perf_counter() - started
    assert 0.035 <= waited < 1.0  # blocked briefly, never indefinitely
    assert store.metrics is not None
    assert store.metrics.dropped.labels("queue_full")._value.get() == 1
    release.set()
    store.close()
    assert make_store(store.config.url).open().counts()["decisions"] == 3


def test_no_block_drops_at_once(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}", queue_size=1, block_ms=0)
    release = threading.Event()
    _stall_writer(store, release)
    store.start()
    record(store, *routed("a"))
    started = time.perf_counter()
    record(store, *routed("b"))
    assert time.perf_counter() - started < 0.02
    assert store.metrics is not None
    assert store.metrics.dropped.labels("queue_full")._value.get() == 1
    release.set()
    store.close()


def test_decisions_after_close_are_counted_not_written(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}").start()
    store.close()
    record(store, *routed())
    assert store.metrics is not None
    assert store.metrics.dropped.labels("closed")._value.get() == 1


def test_feedback_is_idempotent_and_never_overwritten(store: TraceStore) -> None:
    req, decision = routed()
    record(store, req, decision)
    store.flush(5)
    first = outcome(decision.decision_id, decision.decision_id)
    assert store.add_outcome(first).status == "stored"
    assert store.add_outcome(dict(first, received_at=time.time())).status == "duplicate"
    with pytest.raises(FeedbackConflict):
        store.add_outcome(dict(first, quality=0.0, body_sha256="b2"))
    assert store.counts()["outcomes"] == 1
    assert [r["quality"] for r in store.outcome_rows()] == [1.0]


def test_feedback_for_a_still_queued_decision_writes_both(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}")
    release = threading.Event()
    _stall_writer(store, release)
    store.start()
    req, decision = routed()
    record(store, req, decision)
    found, pending = store.decision(decision.decision_id)
    assert found is not None and pending is not None and found["role"] == "planner"
    store.add_outcome(outcome(decision.decision_id, decision.decision_id), pending)
    # durable now, before the writer has run: a second connection sees both rows
    other = make_store(store.config.url).open()
    assert other.counts() == {"decisions": 1, "outcomes": 1}
    release.set()
    store.close()
    assert other.counts() == {"decisions": 1, "outcomes": 1}  # the writer's insert was a no-op
    other.close()


def test_spend_by_key_with_estimates_marked(store: TraceStore) -> None:
    a = routed(role="planner", cost=0.010)
    b = routed(role="planner", cost=0.020)
    c = routed(role="coder", cost=0.300, tier="large")
    for req, decision in (a, b, c):
        record(store, req, decision)
    store.flush(5)
    store.add_outcome(outcome(a[1].decision_id, a[1].decision_id, cost=0.004))
    store.add_outcome(dict(outcome(None, "trace:x", cost=0.5), role="coder"))
    rows = {r["key"]: r for r in store.spend("role")}
    assert rows["planner"]["calls"] == 2
    assert rows["planner"]["actual_usd"] == pytest.approx(0.004)
    assert rows["planner"]["estimated_usd"] == pytest.approx(0.020)
    assert rows["planner"]["estimated_calls"] == 1
    assert rows["coder"]["calls"] == 2 and rows["coder"]["cost_usd"] == pytest.approx(0.8)
    tiers = {r["key"]: r["calls"] for r in store.spend("tier")}
    assert tiers == {"small": 3, "large": 1}
    assert store.spend("role", since=time.time() + 60) == []
    assert sum(r["cost_usd"] for r in store.spend("role", only="planner")) == pytest.approx(0.024)
    with pytest.raises(StoreError, match="'by' parameter"):
        store.spend("colour")


def test_the_calling_key_is_stored_and_spend_groups_by_it(store: TraceStore) -> None:
    a = routed(role="planner", cost=0.010)
    b = routed(role="coder", cost=0.030)
    c = routed(role="planner", cost=0.200)
    a[0].attribute_to("team-a")
    b[0].attribute_to("team-a")
    for req, decision in (a, b, c):  # c came without a key (an open service)
        record(store, req, decision)
    store.flush(5)
    row, _ = store.decision(a[1].decision_id)
    assert row is not None and row["api_key"] == "team-a"
    keys = {r["key"]: r["cost_usd"] for r in store.spend("api_key")}
    assert keys == {"team-a": pytest.approx(0.040), None: pytest.approx(0.200)}
    assert [r["cost_usd"] for r in store.spend("api_key", only="team-a")] == [pytest.approx(0.04)]


def test_a_version_1_store_gains_the_key_column_and_keeps_its_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v1.db"
    old = make_store(f"sqlite:///{path}").start()
    req, decision = routed(cost=0.5)
    record(old, req, decision)
    old.close()
    with sqlite3.connect(path) as conn:  # make it look as a version-1 router left it
        conn.execute("DROP INDEX decisions_key")
        for column in ("api_key", "embedding", "embedder", "feature_version", "prior_scores",
                       "shadow", "requested_model", "max_cost_usd", "map_revision"):
            conn.execute(f"ALTER TABLE decisions DROP COLUMN {column}")
        conn.execute("UPDATE store_meta SET value = '1' WHERE key = 'schema_version'")
    upgraded = make_store(f"sqlite:///{path}").start()
    try:
        row, _ = upgraded.decision(decision.decision_id)
        assert row is not None and row["api_key"] is None and row["estimated_cost_usd"] == 0.5
        with sqlite3.connect(path) as conn:
            version = conn.execute("SELECT value FROM store_meta WHERE key = 'schema_version'")
            assert version.fetchone() == (str(SCHEMA_VERSION),)
    finally:
        upgraded.close()


def test_outcome_rows_join_decision_and_attribution(store: TraceStore) -> None:
    req, decision = routed("what is 2+2", role="solver", task="plan")
    record(store, req, decision)
    store.flush(5)
    store.add_outcome(outcome(decision.decision_id, decision.decision_id, quality=0.5))
    (row,) = list(store.outcome_rows())
    assert row["prompt"] == "what is 2+2" and row["role"] == "solver" and row["task"] == "plan"
    assert row["quality"] == 0.5 and row["decided_tier"] == "small"
    assert row["propensity"] == 1.0 and row["estimated_tokens_in"] == 12


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Database.from_url("mysql://x")
    with pytest.raises(ConfigError, match="SQLite file"):
        Database.from_url("sqlite:///:memory:")
    assert Database.from_url("postgresql://u@h/db").sql("a = ? AND b = ?") == "a = %s AND b = %s"


def test_unreachable_postgres_is_a_store_error() -> None:
    pytest.importorskip("psycopg")
    store = make_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(StoreError, match="cannot connect"):
        store.open()


def test_a_batch_that_cannot_be_serialised_does_not_kill_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}", batch_size=1)
    original = PendingDecision.row
    poisoned = routed("poison")[1].decision_id

    def row(item: PendingDecision, storage: str) -> tuple:
        if item.decision.decision_id == poisoned:
            raise TypeError("cannot serialise")
        return original(item, storage)

    monkeypatch.setattr(PendingDecision, "row", row)
    store.start()
    req, _ = routed("poison")
    record(store, req, routed()[1].model_copy(update={"decision_id": poisoned}))
    for i in range(5):
        record(store, *routed(f"fine {i}"))
    assert store.flush(5)
    assert store.counts()["decisions"] == 5
    assert store.metrics is not None and store.metrics.write_errors._value.get() == 1
    store.close()
