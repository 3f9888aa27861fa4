"""POST /admin/reload swaps config and model atomically, and refuses a bad one."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import default_config_path
from tests.conftest import JSON, LOOPBACK, FakeEmbedder


def write_config(path: Path, model_dir: Path, **changes) -> Path:
    """The shipped config with `changes`, its trace store beside it unless `store` is given
    (the shipped ./traces.db would land in the checkout), and no exploration unless asked
    (a seeded-by-time draw would make a test's expected reason a coin toss). As the
    `settings` fixture: the synthetic model decides a call with no learned category, at 0.9."""
    raw = yaml.safe_load(default_config_path().read_text())
    raw["model_dir"] = str(model_dir)
    raw["store"] = {**raw.get("store", {}), "url": f"sqlite:///{path.parent / 'traces.db'}"}
    raw["exploration_rate"] = 0.0
    raw["quality_target"] = 0.9
    raw["learning"] = {**raw.get("learning", {}), "prior_confidence": 0.0}
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_reload_swaps_prices_without_retraining(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", model_dir)
    app = create_app(config, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as client:
        before = client.get("/tiers").json()[0]["input_price_per_m"]
        raw = yaml.safe_load(config.read_text())
        raw["tiers"][0]["input_price_per_m"] = 0.05
        raw["tiers"][0]["models"] = ["new-small-model"]
        config.write_text(yaml.safe_dump(raw))
        r = client.post("/admin/reload", headers=JSON)
        assert r.status_code == 200 and r.json()["status"] == "reloaded"
        assert client.get("/tiers").json()[0]["input_price_per_m"] == 0.05 != before
        body = client.post("/route", json={"prompt": "say hello", "quality_target": 0}).json()
        assert body["model"] == "new-small-model"


def test_bad_config_or_model_is_refused_and_old_keeps_serving(
    model_dir: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", model_dir)
    app = create_app(config, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as client:
        config.write_text("tiers: []\n")
        r = client.post("/admin/reload", headers=JSON)
        assert r.status_code == 409 and "tiers" in r.json()["detail"]
        assert "previous model keeps serving" in r.json()["detail"]

        broken = Path(shutil.copytree(model_dir, tmp_path / "broken"))
        (broken / "head.joblib").write_bytes(b"garbage")
        write_config(config, broken)
        r = client.post("/admin/reload", headers=JSON)
        assert r.status_code == 409 and "sha256" in r.json()["detail"]

        ok = client.post("/route", json={"prompt": "say hello"})
        assert ok.status_code == 200 and ok.json()["reason"] == "classifier"
        assert 'tier_router_reloads_total{outcome="refused"} 2.0' in client.get("/metrics").text


def test_reload_with_unknown_tier_in_config_is_refused(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", model_dir)
    app = create_app(config, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as client:
        raw = yaml.safe_load(config.read_text())
        raw["tiers"].append({"name": "xl", "models": ["m"], "input_price_per_m": 9,
                             "output_price_per_m": 9, "context_window": 10})
        config.write_text(yaml.safe_dump(raw))
        r = client.post("/admin/reload", headers=JSON)
        assert r.status_code == 409 and "['xl'] are not in the model" in r.json()["detail"]


def test_the_command_lines_shadow_holds_across_a_reload(model_dir: Path, tmp_path: Path) -> None:
    """`tier-router serve --shadow`: every call a shadow call, the file saying nothing of it,
    and a reload of the file keeps it."""
    config = write_config(tmp_path / "c.yaml", model_dir)
    app = create_app(config, embedder_factory=lambda cfg: FakeEmbedder(),
                     overrides={"shadow": True})
    with TestClient(app, client=LOOPBACK) as client:
        body = {"prompt": "say hello", "model": "my-own-model"}
        assert client.post("/route", json=body).json()["shadow"] is True
        assert client.post("/admin/reload", headers=JSON).json()["status"] == "reloaded"
        assert client.post("/route", json=body).json()["shadow"] is True
    plain = create_app(config, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(plain, client=LOOPBACK) as client:
        assert client.post("/route", json={"prompt": "say hello"}).json()["shadow"] is False
