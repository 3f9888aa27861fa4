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
         "ALTER TABLE decisions DROP COLUMN max_cost_usd", "DROP TABLE escalations",
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
    _sql(store_url, "ALTER TABLE decisions DROP COLUMN max_cost_usd", "DROP TABLE escalations",
         "DROP TABLE verifications",
         "UPDATE store_meta SET value = '6' WHERE key = 'schema_version'")
    upgraded = make_store(store_url).start()
    try:
        old, _ = upgraded.decision(decision.decision_id)
        assert old is not None and old["max_cost_usd"] is None  # kept, the new column empty
        assert upgraded.query("SELECT COUNT(*) AS n FROM escalations") == [{"n": 0}]
        assert _sql(store_url, "SELECT value FROM store_meta WHERE key = 'schema_version'") == [
            ("7",)]
    finally:
        upgraded.close()
