"""The one error map: every RouterError has an answer, and a request before start-up is 503."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from router import errors
from router.api.app import create_app
from router.api.errors import ERRORS, answer_for
from router.config import Settings, default_config_path
from tests.conftest import FakeEmbedder


def all_router_errors() -> set[type[errors.RouterError]]:
    found, todo = set(), [errors.RouterError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_router_error_type_is_in_the_map() -> None:
    missing = {cls.__name__ for cls in all_router_errors() if cls not in ERRORS}
    assert not missing, f"add these to router/api/errors.py ERRORS: {sorted(missing)}"


def test_a_subclass_answers_as_its_nearest_base() -> None:
    class Custom(errors.StoreError):
        pass

    assert answer_for(Custom("x")).status == 503
    assert answer_for(errors.ServiceNotStarted("x")).status == 503
    assert answer_for(errors.Forbidden("x")).status == 403
    assert answer_for(errors.AuthError("x")).status == 401


def test_a_request_before_start_up_is_503_not_409(settings: Settings) -> None:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    client = TestClient(app)  # no `with`: the lifespan (start-up) has not run
    r = client.get("/tiers")
    assert r.status_code == 503, r.text
    assert r.json() == {"error": "not started", "detail": "the service has not started"}
    r = client.post("/feedback", json={"decision_id": "x", "success": True})
    assert r.status_code == 503, r.text


def test_a_missing_model_dir_is_named_by_its_full_path(tmp_path: Path) -> None:
    """A relative model_dir is read beside the config, never silently from the project root."""
    raw = yaml.safe_load(default_config_path().read_text())
    raw.update(model_dir="models/default", store={"url": f"sqlite:///{tmp_path / 't.db'}"})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    app = create_app(tmp_path / "c.yaml", embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    assert str(tmp_path / "models" / "default") in r.json()["reason"]
    assert "does not exist" in r.json()["reason"]
