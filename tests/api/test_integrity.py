"""Models load only from the configured directory: no endpoint takes a path or a file."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import LOOPBACK, FakeEmbedder


def test_reload_takes_no_model_path_from_the_request(settings: Settings, tmp_path) -> None:
    """A body is refused (the endpoint takes none); a query parameter is ignored."""
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as client:
        r = client.post(f"/admin/reload?model_dir={tmp_path}",
                        json={"model_dir": str(tmp_path), "head": "gASVAAAAAAAAAAB9lC4="})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"
        r = client.post(f"/admin/reload?model_dir={tmp_path}", json={})
        assert r.status_code == 200 and r.json()["router_version"] == "synthetic-test"
        assert app.state.holder.settings.model_dir == settings.model_dir


def test_no_operation_accepts_files_or_paths(settings: Settings) -> None:
    schema = create_app(settings=settings).openapi()
    text = json.dumps(schema)
    assert '"format": "binary"' not in text and "multipart" not in text
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            body = operation.get("requestBody", {}).get("content", {})
            assert set(body) <= {"application/json"}, path
            names = {p["name"] for p in operation.get("parameters", [])}
            assert not names & {"model_dir", "path", "file", "model"}, path
