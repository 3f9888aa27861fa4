"""Run outcomes against a real `tier-router serve` (real encoder, synthetic head, SQLite): two
keys' runs under one id keep their own outcomes, a key that made no call of a run is refused,
and `/spend` groups runs by the learned map's revision of their first call."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.api.test_reload import write_config
from tests.integration.service import Server
from tests.unit.guards.test_auth import entry

A, B, OPS = "outcome-agent-a", "outcome-agent-b", "outcome-ops"


def test_run_outcomes_are_per_key_and_spend_groups_runs_by_map_revision(
    model_dir: Path, tmp_path: Path
) -> None:
    keys = [entry("a", A, ["route", "feedback"]), entry("b", B, ["route", "feedback"]),
            entry("ops", OPS, ["admin"])]
    config = write_config(tmp_path / "c.yaml", model_dir, auth={"keys": keys})
    a, b, ops = {"X-API-Key": A}, {"X-API-Key": B}, {"X-API-Key": OPS}
    server = Server(config, tmp_path / "server.log").start(ready="/readyz")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            def route(headers: dict[str, str], run_id: str) -> dict:
                r = http.post("/route", headers=headers, json={"prompt": "say hello",
                                                                "run_id": run_id, "task": "t"})
                assert r.status_code == 200, r.text
                return dict(r.json())

            first = route(a, "shared")
            route(b, "shared")
            route(a, "only-a")
            assert http.post("/runs/only-a/outcome", headers=b,
                             json={"success": True}).status_code == 404  # not b's run
            assert http.post("/runs/shared/outcome", headers=a,
                             json={"success": True}).status_code == 200
            assert http.post("/runs/shared/outcome", headers=b,
                             json={"success": False}).status_code == 200  # b's own run
            assert http.get("/runs/shared", headers=a).json()["outcome"]["success"] is True
            assert http.get("/runs/shared", headers=b).json()["outcome"]["success"] is False
            assert http.post("/feedback", headers=a, json={
                "decision_id": first["decision_id"], "quality": 1.0}).status_code == 201
            deadline = time.monotonic() + 30  # the loop rebuilds the map after new outcomes
            while http.get("/admin/learning", headers=ops).json()["revision"] < 1:
                assert time.monotonic() < deadline, "the map was not rebuilt"
                time.sleep(0.2)
            later = route(a, "later")
            assert later["router_version"].endswith("+s1")
            runs = http.get("/spend", headers=ops).json()["runs"]
    finally:
        assert server.stop()
    groups = {(g["revision_from"], g["revision_to"]): g for g in runs["by_revision"]}
    assert list(groups) == [(0, 0), (1, 1)]
    assert (groups[(0, 0)]["runs"], groups[(0, 0)]["with_outcome"],
            groups[(0, 0)]["successful"]) == (3, 2, 1)  # a's and b's "shared" are two runs
    assert (groups[(1, 1)]["runs"], groups[(1, 1)]["with_outcome"]) == (1, 0)
