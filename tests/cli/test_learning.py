"""`tier-router learning` on a store the service wrote: the map it would serve, and a reset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.cli.main import main
from tests.api.test_reload import write_config
from tests.conftest import FakeEmbedder


def test_learning_prints_the_map_and_resets_it(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(tmp_path / "c.yaml", model_dir)
    with TestClient(create_app(path, embedder_factory=lambda cfg: FakeEmbedder())) as c:
        for i in range(3):  # synthetic labels
            d = c.post("/route", json={"prompt": f"hi {i}", "task": "greet"}).json()
            assert c.post("/feedback", json={"decision_id": d["decision_id"],
                                             "quality": 1.0}).status_code == 201
    assert main(["learning", "--config", str(path)]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["revision"] == 3
    assert {e["category"] for e in state["top"]} >= {"-", "-/task:greet"}
    assert main(["learning", "--reset", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("learning state reset at ")
    assert json.loads(out.split("\n", 1)[1])["revision"] == 0
