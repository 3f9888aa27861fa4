"""`tier-router runs` and `tier-router forget` on a store the service wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.cli.main import main
from router.config import load_settings
from tests.api.test_reload import write_config
from tests.conftest import FakeEmbedder


@pytest.fixture
def config(model_dir: Path, tmp_path: Path) -> Path:
    """A config whose store holds a run of three calls (user alice) and one of bob's."""
    path = write_config(tmp_path / "c.yaml", model_dir)
    app = create_app(path, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        for i, prompt in enumerate(["say hello", "prove the theorem about primes", "hi"]):
            d = c.post("/route", json={"prompt": prompt, "run_id": "run-7", "step": str(i),
                                       "role": "solver", "user": "alice"}).json()
            if i == 1:
                c.post("/feedback", json={"decision_id": d["decision_id"], "success": True,
                                          "cost_usd": 0.75, "tokens_out": 321})
        c.post("/route", json={"prompt": "x", "run_id": "run-8", "user": "bob"})
        c.post("/feedback", json={"prompt": "q", "model": "gpt-4.1", "quality": 1.0,
                                  "user": "alice"})
    return path


def test_runs_prints_a_runs_ledger(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "run-7", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run run-7: 3 calls, ")
    assert "(0.750000 reported" in out
    lines = out.splitlines()
    assert len([line for line in lines if " solver " in line]) == 3
    assert "321" in lines[3] and "0.750000" in lines[3]  # step 1: its reported tokens and cost
    assert lines[-2].startswith("most expensive: step 1 (")
    assert lines[-1] == "outcome: not reported (POST /runs/{run_id}/outcome)"
    total = float(out.split(" calls, ")[1].split()[0])
    counted = [float(line.split()[-1]) for line in lines[2:5]]
    assert sum(counted) == pytest.approx(total, abs=3e-6)  # the rows add up to the total
    assert float(lines[5].split()[-1]) == pytest.approx(total, abs=1e-6)
    assert lines[5].split()[0] == "total" and "usd: the one counted" in lines[6]
    assert main(["runs", "run-7", "--json", "--config", str(config)]) == 0
    ledger = json.loads(capsys.readouterr().out)
    assert [s["step"] for s in ledger["steps"]] == ["0", "1", "2"]
    assert ledger["most_expensive"]["cost_reported_usd"] == 0.75


def test_runs_lists_the_live_runs(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--json", "--config", str(config)]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["run_id"], r["calls"]) for r in runs] == [("run-8", 1), ("run-7", 3)]
    assert main(["runs", "--config", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["run_id", "api_key"] and table[2].startswith("run-7 ")
    assert main(["runs", "nope", "--config", str(config)]) == 1
    assert "no live run 'nope'" in capsys.readouterr().out


def test_forget_deletes_a_users_rows_and_says_how_many(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["forget", "--user", "alice", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == (
        "deleted 3 decisions and 2 outcomes of user 'alice'")
    assert main(["runs", "run-7", "--config", str(config)]) == 1
    assert main(["forget", "--user", "alice", "--config", str(config)]) == 0
    assert "deleted 0 decisions and 0 outcomes" in capsys.readouterr().out
    from router.traces.store import TraceStore

    store = TraceStore(load_settings(config).store).open()
    assert store.counts() == {"decisions": 1, "outcomes": 0}
    store.close()


def test_spend_prints_cost_per_run_by_map_revision(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(config, embedder_factory=lambda cfg: FakeEmbedder())) as c:
        assert c.post("/runs/run-7/outcome", json={"success": True}).status_code == 200
    assert main(["runs", "run-7", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "outcome: success True, quality None (reported by None at ")
    assert main(["spend", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("runs by map rev."))
    every, *groups = lines[start + 1:-1]
    assert every.split()[:3] == ["all", "2", "4"]  # runs, calls
    assert every.split()[5:7] == ["1", "1"]  # one with an outcome, a success
    assert [g.split()[:3] for g in groups] == [["0", "2", "4"]]  # a map with nothing learned
    assert lines[-1].startswith("a run's map revision: its first call's")
    assert main(["spend", "--json", "--config", str(config)]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert runs["by_revision"][0]["revision_from"] == 0 and runs["successful"] == 1
