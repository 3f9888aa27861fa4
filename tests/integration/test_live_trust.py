"""Trust over real HTTP: `tier-router serve` with API keys, JSON logs without prompts, and the
refusal to listen publicly when no key is configured. Real encoder, synthetic head."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.guards.auth import hash_key
from tests.api.test_reload import write_config
from tests.conftest import JSON
from tests.integration.service import ROOT, Server
from tests.unit.guards.test_auth import entry

SECRET = "okapi-lantern-5521"
ROUTE, ADMIN = "live-route-key", "live-admin-key"


@pytest.fixture(scope="module")
def keyed(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("trust")
    keys = [entry("agent", ROUTE, ["route"], rate=3), entry("ops", ADMIN, ["admin"])]
    config = write_config(work / "c.yaml", model_dir, auth={"keys": keys},
                          store={"url": f"sqlite:///{work / 'traces.db'}"})
    server = Server(config, work / "server.log").start(ready="/readyz")
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


def test_keys_scopes_and_rate_over_http(keyed: Server) -> None:
    base, route = keyed.url, {"Authorization": f"Bearer {ROUTE}"}
    r = httpx.post(f"{base}/route", json={"prompt": "hello"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{base}/admin/reload", headers={**route, **JSON})
    assert r.status_code == 403 and "lacks the 'admin' scope" in r.json()["detail"]
    r = httpx.post(f"{base}/admin/reload", headers={"X-API-Key": ADMIN, **JSON},
                   timeout=120)
    assert r.status_code == 200
    answers = [httpx.post(f"{base}/route", json={"prompt": f"what is {SECRET}?"}, headers=route)
               for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    # 3 in any 60 s (a sliding window): the fourth waits until the first leaves the window
    assert 55 <= int(answers[-1].headers["retry-after"]) <= 60
    assert keyed.stop()
    text = keyed.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line]
    decisions = {line["decision_id"] for line in lines if line["msg"] == "decision"}
    assert {a.json()["decision_id"] for a in answers[:3]} <= decisions
    assert SECRET not in text and ROUTE not in text and hash_key(ROUTE) not in text


def test_open_service_refuses_a_public_address(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", model_dir)
    done = subprocess.run(
        [sys.executable, "-m", "router.cli.main", "serve", "--config", str(config),
         "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    [line] = [json.loads(ln) for ln in done.stderr.splitlines() if "refusing" in ln]
    assert line["level"] == "ERROR" and "no API keys are configured" in line["msg"]
