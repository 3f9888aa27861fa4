"""Runs read from the store (ledger, live runs, state at start), retention and forget, on
SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from router.config import StoreConfig
from router.decision.features import view_of
from router.schemas import RouteDecision, RouteRequest
from router.traces.db import insert_sql
from router.traces.retention import (
    Deleted,
    RetentionJob,
    SideConnection,
    delete_before,
    forget_user,
)
from router.traces.rows import DECISION_COLUMNS, OUTCOME_COLUMNS, PendingDecision
from router.traces.run_records import RunRecords, revision_bands
from router.traces.store import TraceStore

HOUR = 3600.0
NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'traces.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database(f"r_{uuid.uuid4().hex[:12]}")
    opened = TraceStore(StoreConfig(url=url)).open()  # the schema, as the service makes it
    yield opened
    opened.close()


@pytest.fixture
def conn(store: TraceStore) -> Iterator[SideConnection]:
    c = SideConnection(store.db)
    yield c
    c.close()


def add_decision(conn: SideConnection, at: float, run_id: str | None = "r1",
                 key: str | None = "team-a", cost: float = 0.001, tier: str = "small",
                 step: str | None = None, user: str | None = "u1") -> str:
    request = RouteRequest(prompt="hi", run_id=run_id, role="planner", step=step, task="plan",
                           user=user).attribute_to(key)
    decision = RouteDecision(
        decision_id=uuid.uuid4().hex, tier=tier, model=f"{tier}-model", fallbacks=[],
        scores={"small": 0.5}, reason="classifier", estimated_tokens_in=10,
        estimated_cost_usd=cost, router_version="v")
    row = PendingDecision(request, decision, view_of(request.chat()), at).row(StoreConfig())
    conn.execute([(insert_sql("decisions", DECISION_COLUMNS, "decision_id"), row)])
    return decision.decision_id


def add_outcome(conn: SideConnection, decision_id: str | None, at: float,
                cost: float | None = 0.01, estimated: int = 0, user: str | None = None,
                tokens: tuple[int, int] = (12, 34)) -> None:
    values = {"feedback_id": decision_id or f"trace:{uuid.uuid4().hex}",
              "decision_id": decision_id, "received_at": at, "body_sha256": "b",
              "model_used": "medium-model", "tier": "medium", "quality": 1.0, "cost_usd": cost,
              "cost_estimated": estimated, "tokens_in": tokens[0], "tokens_out": tokens[1],
              "fallback_used": 0, "user_id": user}
    conn.execute([(insert_sql("outcomes", OUTCOME_COLUMNS, "feedback_id"),
                   tuple(values.get(c) for c in OUTCOME_COLUMNS))])


def test_a_ledger_has_the_steps_in_order_costs_and_the_most_expensive(
    store: TraceStore, conn: SideConnection
) -> None:
    first = add_decision(conn, NOW - 30, step="1", cost=0.002)
    second = add_decision(conn, NOW - 20, step="2", cost=0.004, tier="large")
    third = add_decision(conn, NOW - 10, step="3", cost=0.001)
    add_outcome(conn, first, NOW - 25, cost=0.009)  # reported: dearer than estimated
    add_outcome(conn, third, NOW - 5, cost=0.0015, estimated=1)  # from tokens: an estimate
    add_decision(conn, NOW - 15, run_id="other")
    records = RunRecords(store)
    ledger = records.ledger("r1", HOUR, NOW)
    assert ledger is not None
    assert [s.decision_id for s in ledger.steps] == [first, second, third]
    assert [s.step for s in ledger.steps] == ["1", "2", "3"]
    one, two, three = ledger.steps
    assert (one.model, one.tier, one.tokens_in, one.tokens_out) == (
        "medium-model", "medium", 12, 34)  # what served it, as feedback said
    assert (one.cost_estimated_usd, one.cost_reported_usd, one.cost_usd) == (0.002, 0.009, 0.009)
    assert (two.model, two.tokens_in, two.cost_reported_usd, two.cost_usd) == (
        "large-model", None, None, 0.004)
    assert (three.cost_reported_usd, three.cost_usd) == (None, 0.0015)
    assert (two.role, two.task, two.tokens_in_estimated) == ("planner", "plan", 10)
    assert ledger.total_usd == pytest.approx(0.0145) and ledger.calls == 3
    assert ledger.reported_usd == pytest.approx(0.009)
    assert ledger.estimated_usd == pytest.approx(0.0055)
    assert ledger.most_expensive.decision_id == first
    assert (ledger.started_at, ledger.last_call_at, ledger.expires_at) == (
        NOW - 30, NOW - 10, NOW - 10 + HOUR)
    assert ledger.api_keys == ["team-a"]


def test_a_key_sees_only_its_calls_and_an_expired_run_is_gone(
    store: TraceStore, conn: SideConnection
) -> None:
    add_decision(conn, NOW - 20, key="team-a")
    add_decision(conn, NOW - 10, key="team-b")
    add_decision(conn, NOW - 5, key=None)
    records = RunRecords(store)
    assert records.ledger("r1", HOUR, NOW, owner="team-a").calls == 1  # type: ignore[union-attr]
    assert records.ledger("r1", HOUR, NOW, owner="team-c") is None
    every = records.ledger("r1", HOUR, NOW)
    assert every is not None and every.calls == 3
    assert every.api_keys == ["team-a", "team-b", None]
    assert records.ledger("r1", HOUR, NOW - 5 + HOUR + 1) is None  # idle past expire_after_s
    assert records.ledger("nope", HOUR, NOW) is None


def test_a_gap_longer_than_expire_after_s_ends_a_run(
    store: TraceStore, conn: SideConnection
) -> None:
    add_decision(conn, NOW - 3 * HOUR, cost=5.0)  # an earlier run with the same run_id
    later = [add_decision(conn, NOW - 50 * i) for i in (2, 1, 0)]
    records = RunRecords(store)
    ledger = records.ledger("r1", HOUR, NOW)
    assert ledger is not None and [s.decision_id for s in ledger.steps] == later
    assert ledger.total_usd == pytest.approx(0.003)
    # a long run stays one run as long as no gap is longer than expire_after_s
    long_run = [add_decision(conn, NOW - 0.9 * HOUR * i, run_id="long") for i in range(5, -1, -1)]
    totals = records.live_totals(NOW, HOUR)
    assert totals[("team-a", "long")]["calls"] == len(long_run)
    assert totals[("team-a", "r1")] == {
        "spend_usd": pytest.approx(0.003), "calls": 3, "tier": "small", "model": "small-model",
        "started_at": NOW - 100, "last_call_at": NOW}


def test_recent_lists_live_runs_latest_first(store: TraceStore, conn: SideConnection) -> None:
    add_decision(conn, NOW - 30, run_id="a")
    add_decision(conn, NOW - 10, run_id="b", key="team-b", cost=0.5)
    add_decision(conn, NOW - 2 * HOUR, run_id="over")
    add_decision(conn, NOW - 5, run_id=None)
    records = RunRecords(store)
    listing, more = records.recent(NOW, HOUR)
    assert [(r.run_id, r.api_key, r.calls) for r in listing] == [("b", "team-b", 1),
                                                                  ("a", "team-a", 1)]
    assert listing[0].total_usd == 0.5 and not more
    assert [r.run_id for r in records.recent(NOW, HOUR, owner="team-a")[0]] == ["a"]
    first, more = records.recent(NOW, HOUR, limit=1)
    assert [r.run_id for r in first] == ["b"] and more
    second, more = records.recent(NOW, HOUR, limit=1, offset=1)
    assert [r.run_id for r in second] == ["a"] and not more


def test_a_page_of_live_runs_reads_only_its_runs(store: TraceStore,
                                                 conn: SideConnection) -> None:
    """Many live runs: a page of two is the two latest, each with all its live calls, and
    reads a bounded number of rows (the reader never fetches the whole window)."""
    for i in range(300):
        add_decision(conn, NOW - 600 + i, run_id=f"r{i % 100}", cost=0.01)
    reads: list[int | None] = []
    real_read = store.read

    def counted(sql: str, params: tuple = (), rows: int | None = None) -> list:
        out = real_read(sql, params, rows)
        reads.append(len(out))
        return out

    store.read = counted  # type: ignore[method-assign]
    page, more = RunRecords(store).recent(NOW, HOUR, limit=2)
    assert [(r.run_id, r.calls) for r in page] == [("r99", 3), ("r98", 3)] and more
    assert page[0].total_usd == pytest.approx(0.03)
    assert sum(n or 0 for n in reads) <= 12 + 6


def test_retention_deletes_old_decisions_with_their_outcomes(
    store: TraceStore, conn: SideConnection
) -> None:
    old = add_decision(conn, NOW - 10 * 86_400)
    add_outcome(conn, old, NOW - 86_400)  # received late, goes with its decision
    add_outcome(conn, None, NOW - 9 * 86_400)  # an old trace without a decision
    kept = add_decision(conn, NOW - 86_400)
    add_outcome(conn, kept, NOW - 86_400 + 5)
    deleted = delete_before(conn, NOW - 7 * 86_400)
    assert (deleted.decisions, deleted.outcomes) == (1, 2)
    assert store.query("SELECT decision_id FROM decisions") == [{"decision_id": kept}]
    assert store.query("SELECT decision_id FROM outcomes") == [{"decision_id": kept}]
    assert delete_before(conn, NOW - 7 * 86_400) == Deleted(0, 0)


def test_forget_deletes_a_users_rows_and_counts_them(
    store: TraceStore, conn: SideConnection
) -> None:
    mine = [add_decision(conn, NOW - i, user="alice") for i in range(3)]
    add_outcome(conn, mine[0], NOW)
    add_outcome(conn, None, NOW, user="alice")  # a trace she posted
    theirs = add_decision(conn, NOW, user="bob")
    add_outcome(conn, theirs, NOW)
    deleted = forget_user(conn, "alice")
    assert (deleted.decisions, deleted.outcomes) == (3, 2)
    assert store.query("SELECT user_id FROM decisions") == [{"user_id": "bob"}]
    assert len(store.query("SELECT feedback_id FROM outcomes")) == 1
    assert forget_user(conn, "alice") == Deleted(0, 0)


def test_the_retention_job_runs_when_due_and_says_so_in_the_log(
    conn: SideConnection, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [NOW]
    add_decision(conn, NOW - 40 * 86_400)
    job = RetentionJob(conn, every_s=3600, clock=lambda: clock[0])
    assert job.tick(None) is None  # no retention configured: nothing runs
    with caplog.at_level(logging.INFO, logger="router.traces.retention"):
        assert job.tick(30) == Deleted(1, 0)
    assert "retention: deleted 1 decisions and 0 outcomes older than 30 days" in caplog.text
    add_decision(conn, NOW - 40 * 86_400)
    clock[0] += 60
    assert job.tick(30) is None  # not due for an hour
    clock[0] += 3600
    assert job.tick(30).decisions == 1  # type: ignore[union-attr]


def test_revision_bands_are_bounded_never_split_a_revision_and_hold_about_equal_runs() -> None:
    assert revision_bands([0, 0, 5, 9]) == [range(0, 1), range(5, 6), range(9, 10)]
    runs = [r for r in range(100) for _ in range(3)] + [40] * 60  # 100 revisions, one busy
    bands = revision_bands(runs, bands=8)
    assert len(bands) <= 8
    assert bands[0].start == 0 and bands[-1].stop == 100
    assert all(a.stop == b.start for a, b in zip(bands, bands[1:], strict=False))  # no gap
    sizes = [sum(r in band for r in runs) for band in bands]
    busy = next(i for i, band in enumerate(bands) if 40 in band)
    assert sum(sizes) == len(runs) and sizes[busy] <= 60 + 3 * 15
    assert all(30 <= n <= 50 for i, n in enumerate(sizes) if i != busy)  # the rest about equal
    assert revision_bands([]) == []
