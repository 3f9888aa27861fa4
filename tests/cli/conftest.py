"""A store the service wrote, for the commands that read one."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from tests.api.test_reload import write_config
from tests.conftest import FakeEmbedder


@pytest.fixture
def greeted(model_dir: Path, tmp_path: Path) -> Path:
    """The config of a store with three labelled `greet` calls (synthetic labels), written by
    the app through /route and /feedback."""
    path = write_config(tmp_path / "c.yaml", model_dir)
    with TestClient(create_app(path, embedder_factory=lambda cfg: FakeEmbedder())) as c:
        for i in range(3):
            d = c.post("/route", json={"prompt": f"hi {i}", "task": "greet"}).json()
            assert c.post("/feedback", json={"decision_id": d["decision_id"],
                                             "quality": 1.0}).status_code == 201
    return path
