"""The client package is tested from this checkout's `clients/python` (put first on sys.path):
the root project cannot name it as a dependency, since pip refuses a relative path in a
requirement, and an installed copy may be another checkout's. Its tests run against a real
`tier-router serve` on a free loopback port, in a temp dir, on the synthetic model, with keys."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_reload import write_config
from tests.integration.service import ROOT, Server
from tests.ports import free_port
from tests.unit.guards.test_auth import entry

# LiteLLM reads this at import: its model cost map from the installed package, never the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
CLIENT_SRC = ROOT / "clients" / "python"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))


# The keys of the live service: an agent's (route and feedback), a rate-limited one, an admin's
AGENT, LIMITED, ADMIN = "client-agent-key", "client-limited-key", "client-admin-key"


@pytest.fixture(scope="package")
def live(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service for the client tests: synthetic head, real encoder, API keys on."""
    work = tmp_path_factory.mktemp("client-live")
    keys = [entry("agent", AGENT, ["route", "feedback"]), entry("limited", LIMITED, ["route"], 2),
            entry("ops", ADMIN, ["admin"])]
    config = write_config(work / "c.yaml", model_dir, auth={"keys": keys})
    server = Server(config, work / "server.log").start(ready="/readyz")
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


def spend(server: Server, by: str) -> dict:
    """GET /spend grouped `by`, as {key: row} (an admin call)."""
    r = httpx.get(f"{server.url}/spend", params={"by": by}, headers={"X-API-Key": ADMIN})
    assert r.status_code == 200, r.text
    return {row["key"]: row for row in r.json()["rows"]}


@pytest.fixture
def closed_url() -> str:
    """A loopback port nothing listens on: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


def outcome_row(server: Server, decision_id: str) -> dict:
    """The outcome the service stored for a decision (its trace store is beside its config)."""
    with sqlite3.connect(server.config.parent / "traces.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM outcomes WHERE decision_id = ?", (decision_id,)).fetchone()
    assert row is not None, f"no outcome stored for {decision_id}"
    return dict(row)


def decision_ids(server: Server, step: str) -> list[str]:
    """The decisions the service stored for calls made with this `step`."""
    with sqlite3.connect(server.config.parent / "traces.db") as db:
        return [r[0] for r in db.execute("SELECT decision_id FROM decisions WHERE step = ?",
                                         (step,))]
