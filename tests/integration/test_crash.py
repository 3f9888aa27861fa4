"""SIGKILL the real server in the middle of a feedback stream; every acknowledged record survives.

A 2xx from POST /feedback promises the outcome is committed (SQLite WAL, synchronous=FULL;
PostgreSQL commit), with its decision even if that decision was still in the writer's queue.
Run on both stores: PostgreSQL is a real server the test session starts (tests/pg_server.py).
The router runs the shipped model from models/default when it is there; without it the
service routes degraded (fail_open), which changes nothing about what is stored.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from router.config import StoreConfig
from router.traces.store import TraceStore
from tests.integration.service import SHIPPED_MODEL, Server, write_config

DECISIONS = 400
KILL_AFTER = 150


def feedback_bodies(decisions: list[dict]) -> list[dict]:
    """Feedback for each decision, and every fifth item a trace that bypassed the router."""
    bodies = []
    for i, d in enumerate(decisions):
        bodies.append({"decision_id": d["decision_id"], "success": i % 3 != 0,
                       "model_used": d["model"], "cost_usd": 0.0001 * (i + 1),
                       "tokens_in": 100 + i, "tokens_out": 20, "latency_ms": 250.0})
        if i % 5 == 0:
            bodies.append({"prompt": f"bypassed call {i}", "model": "gpt-4.1", "quality": 0.5,
                           "role": "bypass", "run_id": f"run-{i}"})
    return bodies


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'traces.db'}"
    return request.getfixturevalue("postgres").new_database("crash_test")


def test_acknowledged_feedback_survives_sigkill(tmp_path: Path, store_url: str) -> None:
    store = {"url": store_url, "prompt_storage": "full", "flush_interval_ms": 200}
    config = write_config(tmp_path / "config.yaml", model_dir=str(SHIPPED_MODEL), store=store,
                          embedder={"backend": "torch", "threads": 1})
    server = Server(config, tmp_path / "server.log").start()
    try:
        if (SHIPPED_MODEL / "metadata.json").is_file():  # then it must be serving, not degraded
            assert httpx.get(server.url + "/readyz", timeout=30).status_code == 200
        decisions = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for start in range(0, DECISIONS, 50):
                batch = [{"prompt": f"Question {i}: what is {i} + {i}?", "role": "solver",
                          "run_id": f"r{i // 10}"} for i in range(start, start + 50)]
                r = client.post("/route/batch", json={"requests": batch})
                assert r.status_code == 200, r.text
                decisions += r.json()["decisions"]

        acknowledged: list[dict] = []
        lock = threading.Lock()
        killed = threading.Event()

        def post(body: dict) -> None:
            if killed.is_set():
                return
            try:
                r = httpx.post(server.url + "/feedback", json=body, timeout=30)
            except httpx.HTTPError:
                return  # in flight when the server died: not acknowledged
            if r.status_code in (200, 201):
                with lock:
                    acknowledged.append({**body, **r.json()})

        bodies = feedback_bodies(decisions)
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(post, b) for b in bodies]
            while len(acknowledged) < KILL_AFTER and not all(f.done() for f in futures):
                time.sleep(0.01)
            server.kill()  # SIGKILL: no shutdown hook runs, the queue is not flushed
            killed.set()
        assert KILL_AFTER <= len(acknowledged) < len(bodies), "the kill was not mid-stream"
    finally:
        server.kill()

    # The store as the crash left it, read before any restart could repair anything.
    reader = TraceStore(StoreConfig(url=store_url)).open()
    stored = {r["feedback_id"]: r for r in reader.outcome_rows()}
    reader.close()
    missing = [a["feedback_id"] for a in acknowledged if a["feedback_id"] not in stored]
    assert missing == [], f"{len(missing)} acknowledged outcomes lost"
    for a in acknowledged:
        if a.get("decision_id"):
            assert stored[a["feedback_id"]]["decided_tier"] is not None  # its decision too

    restarted = Server(config, tmp_path / "server2.log").start()
    try:
        for a in acknowledged[:40]:
            body = {k: v for k, v in a.items() if k not in ("feedback_id", "status")}
            if body.get("decision_id") is None:
                body.pop("decision_id", None)
            r = httpx.post(restarted.url + "/feedback", json=body, timeout=30)
            assert r.status_code == 200 and r.json()["status"] == "duplicate", r.text
        spend = httpx.get(restarted.url + "/spend", params={"by": "role"}).json()
        assert {row["key"] for row in spend["rows"]} >= {"solver"}
    finally:
        assert restarted.stop()
    print(f"\nSIGKILL test ({store_url.split(':')[0]}): {len(bodies)} feedback posts, "
          f"{len(acknowledged)} acknowledged before the kill, "
          f"{len(acknowledged) - len(missing)} found after restart")


def test_graceful_stop_writes_every_queued_decision(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    store = {"url": f"sqlite:///{db}", "flush_interval_ms": 10_000, "batch_size": 100_000}
    config = write_config(tmp_path / "config.yaml", model_dir=str(tmp_path / "no-model"),
                          store=store)  # degraded: no encoder to load, starts fast
    server = Server(config, tmp_path / "server.log").start()
    try:
        batch = [{"prompt": f"p{i}"} for i in range(120)]
        r = httpx.post(server.url + "/route/batch", json={"requests": batch}, timeout=60)
        assert r.status_code == 200
    finally:
        assert server.stop()
    reader = TraceStore(StoreConfig(url=f"sqlite:///{db}")).open()
    assert reader.counts()["decisions"] == 120
    reader.close()
