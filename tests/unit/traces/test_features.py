"""Features stored with each decision (store.feature_storage): rows, migration, read back.

The embeddings here are synthetic (random unit vectors or the fake embedder's), for plumbing.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings, StoreConfig
from router.decision.features import FEATURE_NAMES, FEATURE_VERSION, view_of
from router.traces.db import SCHEMA_VERSION
from router.traces.export import export_features
from router.traces.rows import Seen, decode_embedding, encode_embedding, stored_features
from router.traces.store import TraceStore
from tests.conftest import FakeEmbedder
from tests.unit.traces import test_store
from tests.unit.traces.test_store import make_store, routed

store_url = test_store.store_url  # the SQLite and PostgreSQL fixture, shared


def seen(dim: int = 384, embedder: str = "fake@onnx-int8") -> Seen:
    vector = np.random.default_rng(0).normal(size=dim).astype(np.float32)
    return Seen(vector / np.linalg.norm(vector), embedder,
                {"small": 0.2, "medium": 0.5, "large": 0.9})


def test_feature_storage_follows_prompt_storage_unless_set() -> None:
    assert StoreConfig().feature_storage == "embedding"
    assert StoreConfig(prompt_storage="hash").feature_storage == "embedding"
    assert StoreConfig(prompt_storage="full").feature_storage == "embedding"
    assert StoreConfig(prompt_storage="none").feature_storage == "none"
    assert StoreConfig(prompt_storage="none", feature_storage="embedding").feature_storage == \
        "embedding"
    assert StoreConfig(prompt_storage="hash", feature_storage="none").feature_storage == "none"


def test_a_bad_feature_storage_names_the_field() -> None:
    with pytest.raises(ValueError, match="feature_storage"):
        StoreConfig(feature_storage="text")  # type: ignore[arg-type]


@pytest.mark.parametrize("storage", ["embedding", "none"])
def test_a_decision_row_keeps_what_the_classifier_saw(tmp_path: Path, storage: str) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}", feature_storage=storage).start()
    req, decision = routed("what is 2+2")
    s = seen()
    store.record(req, view_of(req.chat()), decision, s)
    store.flush(5)
    row, _ = store.decision(decision.decision_id)
    store.close()
    assert row is not None and row["prompt"] is None  # hash: no text
    assert json.loads(row["prior_scores"]) == s.prior_scores  # scores are always kept
    if storage == "none":
        assert row["embedding"] is None and row["embedder"] is None
        return
    assert len(row["embedding"]) == 384 * 2  # float16
    assert np.allclose(decode_embedding(row["embedding"]), s.embedding, atol=1e-3)
    assert row["embedder"] == "fake@onnx-int8" and row["feature_version"] == FEATURE_VERSION


def test_a_queued_decision_hands_feedback_its_features(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 't.db'}", flush_interval_ms=5000,
                       batch_size=10_000).start()
    req, decision = routed()
    store.record(req, view_of(req.chat()), decision, seen())
    row, pending = store.decision(decision.decision_id)
    store.close()
    assert pending is not None and row is not None
    assert decode_embedding(row["embedding"]) is not None and row["prior_scores"]


def test_stored_features_read_back_or_say_why_not() -> None:
    vector = seen().embedding
    cheap = {"tokens_in": 7, **dict.fromkeys(FEATURE_NAMES, 1.0)}
    row = {"embedding": encode_embedding(vector), "embedder": "fake@torch",
           "feature_version": FEATURE_VERSION, "features": json.dumps(cheap),
           "estimated_tokens_in": 7}
    got = stored_features(row, "fake@onnx-int8", 384)  # another backend, same weights: fine
    assert not isinstance(got, str) and got is not None
    assert np.allclose(got[0], vector, atol=1e-3) and got[1].numeric == (1.0,) * 5
    assert got[1].tokens_in == 7 and got[1].text == ""
    assert stored_features({**row, "embedder": "other"}, "fake", 384) == "embedder other"
    assert stored_features({**row, "feature_version": "view-0"}, "fake", 384) == \
        "feature version view-0"
    assert stored_features(row, "fake", 768) == "dimension 384"
    assert stored_features({**row, "embedding": None}, "fake", 384) is None


def test_a_version_2_store_gains_the_feature_columns_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    old = make_store(f"sqlite:///{path}").start()
    req, decision = routed(cost=0.5)
    old.record(req, view_of(req.chat()), decision)
    old.close()
    with sqlite3.connect(path) as conn:  # as a version-2 router left it
        for column in ("embedding", "embedder", "feature_version", "prior_scores", "shadow",
                       "requested_model", "max_cost_usd", "map_revision"):
            conn.execute(f"ALTER TABLE decisions DROP COLUMN {column}")
        conn.execute("UPDATE store_meta SET value = '2' WHERE key = 'schema_version'")
    upgraded = make_store(f"sqlite:///{path}").start()
    try:
        row, _ = upgraded.decision(decision.decision_id)
        assert row is not None and row["estimated_cost_usd"] == 0.5 and row["embedding"] is None
        req2, decision2 = routed()
        upgraded.record(req2, view_of(req2.chat()), decision2, seen())
        upgraded.flush(5)
        row2, _ = upgraded.decision(decision2.decision_id)
        assert row2 is not None and row2["embedding"] is not None
        with sqlite3.connect(path) as conn:
            version = conn.execute("SELECT value FROM store_meta WHERE key = 'schema_version'")
            assert version.fetchone() == (str(SCHEMA_VERSION),)
    finally:
        upgraded.close()


def test_the_service_stores_the_embedding_it_scored_with(settings: Settings) -> None:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as client:
        decision = client.post("/route", json={"prompt": "prove the theorem"}).json()
        fb = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                            "quality": 1.0})
        assert fb.status_code == 201, fb.text
    store = TraceStore(settings.store).open()
    (row,) = list(store.outcome_rows())
    store.close()
    expected = FakeEmbedder().encode([view_of_text("prove the theorem")])[0]
    assert np.allclose(decode_embedding(row["embedding"]), expected, atol=1e-3)
    assert row["embedder"] == "fake" and row["prompt"] is None
    assert set(json.loads(row["prior_scores"])) == {"small", "medium", "large"}


def view_of_text(prompt: str) -> str:
    from router.decision.features import view_of_prompt

    return view_of_prompt(prompt).text


def test_export_features_writes_labels_and_vectors_and_counts_the_rest(tmp_path: Path) -> None:
    vector = seen().embedding
    base = {"decision_id": uuid.uuid4().hex, "quality": 1.0, "tier": "small", "t": 0.0,
            "features": json.dumps({"tokens_in": 3}), "feature_version": FEATURE_VERSION,
            "embedder": "fake", "embedding": encode_embedding(vector), "propensity": 0.5}
    rows = [base, {**base, "embedder": "other"}, {**base, "embedding": None}]
    written, skipped = export_features(rows, tmp_path / "f.jsonl", "fake", 384)
    assert written == 1 and skipped == {"embedder other": 1, "no features stored": 1}
    (record,) = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert len(record["embedding"]) == 384 and record["quality"] == 1.0
    assert record["propensity"] == 0.5 and record["feature_version"] == FEATURE_VERSION


def test_learning_rows_and_the_reset_marker_on_both_databases(store_url: str) -> None:
    from tests.unit.traces.test_store import outcome

    store = make_store(store_url).start()
    try:
        ids = []
        for _ in range(3):
            req, decision = routed()
            store.record(req, view_of(req.chat()), decision, seen())
            ids.append(decision.decision_id)
        store.flush(5)
        for i in ids:
            store.add_outcome({**outcome(i, i), "tier": "small"})
        rows = store.learning_rows(10)
        assert [r["feedback_id"] for r in rows] == ids  # oldest first
        assert decode_embedding(rows[0]["embedding"]) is not None and rows[0]["prior_scores"]
        assert store.learned_count() == 3 and store.learning_rows(2)[-1]["feedback_id"] == ids[-1]
        at = store.reset_learning()
        assert store.learning_reset_at() == pytest.approx(at)
        assert store.learning_rows(10, at) == [] and store.learned_count(at) == 0
        store.reset_learning(at + 1)  # a second reset overwrites the first
        assert store.learning_reset_at() == pytest.approx(at + 1)
    finally:
        store.close()


def test_export_audit_writes_every_decision_with_its_outcome_filtered_by_role(
    settings: Settings, tmp_path: Path
) -> None:
    from router.traces.export import export_audit

    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as client:
        ids = [client.post("/route", json={"prompt": f"say hello {i}", "role": role,
                                           "run_id": "r1"}).json()["decision_id"]
               for i, role in enumerate(["planner", "planner", "coder"])]
        assert client.post("/feedback", json={"decision_id": ids[0], "quality": 0.5}
                           ).status_code == 201
    store = TraceStore(settings.store).open()
    try:
        planner = store.audit_rows(role="planner")
        everyone = store.audit_rows(run_id="r1")
        assert store.audit_rows(api_key="nobody") == []
    finally:
        store.close()
    assert len(everyone) == 3 and [r["decision_id"] for r in planner] == ids[:2]
    assert export_audit(planner, tmp_path / "audit.jsonl") == 2
    first, second = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert first["outcome"]["quality"] == 0.5 and "outcome" not in second
    assert first["prompt_hash"] and "prompt" not in first  # hash: no text kept
    assert set(first["prior_scores"]) == set(first["scores"]) == {"small", "medium", "large"}
