"""A version-3 store (outcomes.quality NOT NULL, no decisions.shadow) is brought to version 4 in
place: every row kept, outcome-only feedback accepted afterwards. SQLite rebuilds the table
(it cannot drop a NOT NULL); PostgreSQL alters the column. Rows are synthetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.traces.db import _OUTCOMES, SCHEMA_VERSION, Database
from tests.unit.traces.test_store import make_store, outcome, record, routed

V3_OUTCOMES = _OUTCOMES.replace("quality DOUBLE PRECISION,", "quality DOUBLE PRECISION NOT NULL,")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'traces.db'}"
    return request.getfixturevalue("postgres").new_database("migration_test")


def _sql(url: str, *statements: str) -> list[tuple]:
    """Run `statements` in one transaction; the last one's rows."""
    db = Database.from_url(url)
    conn = db.connect("durable")
    try:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(db.sql(statement))
        rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def test_a_version_3_store_keeps_its_rows_and_takes_outcomes_without_a_label(
    store_url: str,
) -> None:
    store = make_store(store_url, prompt_storage="full").start()
    req, decision = routed("what is 2+2")
    record(store, req, decision)
    store.flush(5)
    labelled = outcome(decision.decision_id, decision.decision_id, 0.5)
    assert store.add_outcome(labelled).status == "stored"
    store.close()
    _sql(store_url,  # as a version-3 router left it, its rows in place
         "ALTER TABLE decisions DROP COLUMN shadow",
         "ALTER TABLE decisions DROP COLUMN requested_model",
         "ALTER TABLE decisions DROP COLUMN max_cost_usd",
         "ALTER TABLE decisions DROP COLUMN map_revision", "DROP TABLE escalations",
         "DROP TABLE verifications",
         "ALTER TABLE outcomes RENAME TO outcomes_v4", V3_OUTCOMES,
         "INSERT INTO outcomes SELECT * FROM outcomes_v4", "DROP TABLE outcomes_v4",
         "UPDATE store_meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(Exception, match="(?i)not.null"):  # the old table refuses no label
        _sql(store_url, "INSERT INTO outcomes (feedback_id, received_at, body_sha256, "
                        "cost_estimated, fallback_used) VALUES ('x', 0, 'b', 1, 0)")

    upgraded = make_store(store_url, prompt_storage="full").start()
    try:
        assert _sql(store_url, "SELECT value FROM store_meta WHERE key = 'schema_version'") == [
            (str(SCHEMA_VERSION),)]
        req2, decision2 = routed("and 3+3?")
        record(upgraded, req2, decision2)
        upgraded.flush(5)
        unlabelled = {**outcome(decision2.decision_id, decision2.decision_id), "quality": None}
        assert upgraded.add_outcome(unlabelled).status == "stored"
        rows = {r["decision_id"]: r for r in upgraded.outcome_rows()}
        assert rows[decision.decision_id]["quality"] == 0.5  # kept through the rebuild
        assert rows[decision2.decision_id]["quality"] is None
        assert upgraded.learned_count() == 1  # the unlabelled one never teaches
        old_decision, _ = upgraded.decision(decision.decision_id)
        assert old_decision is not None and old_decision["shadow"] == 0
    finally:
        upgraded.close()


def test_a_version_6_store_gains_the_escalations_table_and_max_cost_usd(store_url: str) -> None:
    store = make_store(store_url).start()
    req, decision = routed("what is 2+2")
    record(store, req, decision)
    store.flush(5)
    store.close()
    _sql(store_url, "ALTER TABLE decisions DROP COLUMN max_cost_usd",
         "ALTER TABLE decisions DROP COLUMN map_revision", "DROP TABLE escalations",
         "DROP TABLE verifications",
         "UPDATE store_meta SET value = '6' WHERE key = 'schema_version'")
    upgraded = make_store(store_url).start()
    try:
        old, _ = upgraded.decision(decision.decision_id)
        assert old is not None and old["max_cost_usd"] is None  # kept, the new column empty
        assert upgraded.query("SELECT COUNT(*) AS n FROM escalations") == [{"n": 0}]
        assert _sql(store_url, "SELECT value FROM store_meta WHERE key = 'schema_version'") == [
            (str(SCHEMA_VERSION),)]
    finally:
        upgraded.close()


V7_RUN_OUTCOMES = """CREATE TABLE run_outcomes (run_id TEXT PRIMARY KEY, api_key TEXT,
    success INTEGER, quality DOUBLE PRECISION, received_at DOUBLE PRECISION NOT NULL)"""


def test_a_version_7_store_keys_its_run_outcomes_by_key_and_gains_map_revision(
    store_url: str,
) -> None:
    store = make_store(store_url).start()
    for prompt, run_id, key in (("a", "shared", "team-a"), ("b", "shared", "team-b"),
                                ("c", "solo", "team-a"), ("d", "open", None)):
        req, decision = routed(prompt)
        record(store, req.model_copy(update={"run_id": run_id}).attribute_to(key), decision)
    store.flush(5)
    store.close()
    _sql(store_url, "ALTER TABLE decisions DROP COLUMN map_revision", "DROP TABLE run_outcomes",
         V7_RUN_OUTCOMES,  # as a version-7 router left it: one outcome per run id
         "INSERT INTO run_outcomes VALUES ('shared', 'team-a', 1, 0.9, 10.0)",
         "INSERT INTO run_outcomes VALUES ('solo', 'ops', 0, NULL, 11.0)",
         "INSERT INTO run_outcomes VALUES ('open', NULL, 1, NULL, 12.0)",
         "INSERT INTO run_outcomes VALUES ('gone', 'team-c', NULL, 0.2, 13.0)",
         "UPDATE store_meta SET value = '7' WHERE key = 'schema_version'")
    upgraded = make_store(store_url).start()
    try:
        rows = upgraded.query("SELECT api_key, run_id, reported_by, success, quality, "
                              "received_at FROM run_outcomes ORDER BY run_id, api_key")
        assert [tuple(r.values()) for r in rows] == [
            ("team-c", "gone", "team-c", None, 0.2, 13.0),  # no call left: its reporter's
            ("", "open", None, 1, None, 12.0),
            ("team-a", "shared", "team-a", 1, 0.9, 10.0),  # each key saw it: each keeps it
            ("team-b", "shared", "team-a", 1, 0.9, 10.0),
            ("team-a", "solo", "ops", 0, None, 11.0),  # an admin's report: the run's key's
        ]
        assert upgraded.query("SELECT COUNT(*) AS n FROM decisions WHERE map_revision IS NULL"
                              ) == [{"n": 4}]  # kept, the new column empty
        assert _sql(store_url, "SELECT value FROM store_meta WHERE key = 'schema_version'") == [
            (str(SCHEMA_VERSION),)]
    finally:
        upgraded.close()
    again = make_store(store_url).start()  # a second start changes nothing
    try:
        assert len(again.query("SELECT run_id FROM run_outcomes")) == 5
    finally:
        again.close()
