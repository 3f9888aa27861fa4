"""A runaway agent loop against a real `tier-router serve` (real encoder, synthetic head), on
SQLite and PostgreSQL: the run's cap stops it with a 402 on the call after its spend reaches
the cap; another key cannot post its outcomes; the ledger and the cap survive a SIGKILL; the
CLI prints the same ledger from the store."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.api.test_reload import write_config
from tests.integration.service import ROOT, Server
from tests.unit.guards.test_auth import entry

A, B = "live-agent-a", "live-agent-b"
CAP = 0.002  # USD a run; a "say hello"-sized call on the small tier estimates ~0.00016


# the PostgreSQL run is slow (two server starts); its SQL is the SQLite run's, and
# tests/unit/traces/test_run_records.py runs it on a real PostgreSQL server by default
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'traces.db'}"
    return request.getfixturevalue("postgres").new_database(f"runs_{uuid.uuid4().hex[:8]}")


def test_a_runaway_loop_is_stopped_and_its_ledger_survives_a_kill(
    model_dir: Path, tmp_path: Path, store_url: str
) -> None:
    keys = [entry("a", A, ["route", "feedback"]), entry("b", B, ["route", "feedback"])]
    config = write_config(tmp_path / "c.yaml", model_dir, auth={"keys": keys},
                          store={"url": store_url}, runs={"by_role": {"looper": CAP}})
    a, b = {"X-API-Key": A}, {"X-API-Key": B}
    server = Server(config, tmp_path / "server.log").start(ready="/readyz")
    try:
        answers = []
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for step in range(100):  # the loop an agent forgot to bound
                r = http.post("/route", headers=a, json={
                    "prompt": "say hello", "run_id": "loop-1", "role": "looper",
                    "step": str(step), "max_tokens": 400})
                answers.append(r)
                if r.status_code != 200:
                    break
            ok = [r.json() for r in answers if r.status_code == 200]
            refused = answers[-1]
            assert refused.status_code == 402, refused.text
            spend = refused.json()["run_spend_usd"]
            per_call = ok[-1]["estimated_cost_usd"]
            assert spend >= CAP and spend - CAP < per_call  # stopped on the next call
            assert refused.json()["run_max_cost_usd"] == CAP
            outcome = {"decision_id": ok[0]["decision_id"], "success": True, "cost_usd": 0.001}
            assert http.post("/feedback", headers=b, json=outcome).status_code == 403
            assert http.post("/feedback", headers=a, json=outcome).status_code == 201
            ledger = http.get("/runs/loop-1", headers=a).json()
            assert ledger["calls"] == len(ok)
            assert http.get("/runs/loop-1", headers=b).status_code == 404
        server.kill()  # SIGKILL: the decisions already written are what the next process reads
        print(f"\nrunaway loop ({store_url.split(':')[0]}): cap {CAP} USD, {len(ok)} calls "
              f"answered at ~{per_call:.6f} USD each, call {len(ok) + 1} refused (402) at "
              f"{spend:.6f} USD")
        restarted = Server(config, tmp_path / "server2.log").start(ready="/readyz")
        try:
            with httpx.Client(base_url=restarted.url, timeout=60) as http:
                after = http.get("/runs/loop-1", headers=a).json()
                assert [s["decision_id"] for s in after["steps"]] == [d["decision_id"] for d in ok]
                assert after["steps"][0]["cost_reported_usd"] == 0.001
                assert after["total_usd"] == pytest.approx(spend + 0.001 - per_call)
                r = http.post("/route", headers=a, json={"prompt": "say hello",
                                                         "run_id": "loop-1", "role": "looper"})
                assert r.status_code == 402  # the restarted process read the run back
                assert r.json()["run_spend_usd"] == pytest.approx(after["total_usd"])
                fresh = http.post("/route", headers=a, json={
                    "prompt": "say hello", "run_id": "loop-2", "role": "looper"})
                assert fresh.status_code == 200  # a new run has its own cap
        finally:
            assert restarted.stop()
    finally:
        server.kill()
    done = subprocess.run([sys.executable, "-m", "router.cli.main", "runs", "loop-1", "--json",
                           "--config", str(config)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert [s["step"] for s in printed["steps"][:3]] == ["0", "1", "2"]
    assert printed["most_expensive"]["cost_usd"] == max(s["cost_usd"] for s in printed["steps"])
