"""Retrain from the store, judge, promote and roll back; export; off-policy estimators.

The loop runs on the synthetic model and the fake embedder (labels are made up: 'prove' and
'theorem' prompts fail on the small tier), so it checks the plumbing and the maths, not
routing quality; the integration test does that with the real model and real outcomes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import PromotionConfig, Settings, load_settings
from router.decision.artifact import save_model
from router.decision.features import FeatureSpec
from router.decision.quality_head import TierQualityRouter
from router.errors import RouterError
from router.traces.export import export_traces
from router.traces.store import TraceStore
from tests.conftest import EASY, HARD, SYNTHETIC_HEAD, FakeEmbedder
from training.ingest import read_traces
from training.traffic.offpolicy import paired_dr_ci, policy_value, tier_means
from training.traffic.promote import history_dir, judge, promote, rollback
from training.traffic.retrain import REPORT_FILE, retrain


def recipe_model(path: Path) -> Path:
    """The conftest's synthetic model, saved with a head recipe as `tier-router train` does."""
    rng = np.random.default_rng(1)
    texts = [f"{rng.choice(EASY)} {i}" for i in range(60)] + [
        f"{rng.choice(HARD)} {i}" for i in range(60)]
    hard = np.array([0] * 60 + [1] * 60)
    labels = np.stack([1.0 - hard, 1.0 - 0.7 * hard, np.full(120, 0.95)], axis=1)
    head = TierQualityRouter(tiers=("small", "medium", "large"), **SYNTHETIC_HEAD)
    head.fit(FakeEmbedder().encode(texts), labels)
    return save_model(path, head, FeatureSpec(), router_version="synthetic-serving",
                      head={"name": "tqr", "head": "tqr", **SYNTHETIC_HEAD},
                      embedder_backend="fake")


def truth(prompt: str, tier: str) -> float:
    """Made-up outcomes: hard prompts fail on small, half the time on medium."""
    hard = any(w in prompt for w in ("prove", "theorem"))
    return {"small": 0.0 if hard else 1.0, "medium": 0.5 if hard else 1.0, "large": 1.0}[tier]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load(Path("router/default_config.yaml").read_text())
    raw.update(model_dir=str(recipe_model(tmp_path / "models" / "default")),
               exploration_seed=3,
               store={"url": f"sqlite:///{tmp_path / 'traces.db'}", "prompt_storage": "full",
                      "flush_interval_ms": 5},
               promotion={"holdout_fraction": 0.3, "min_holdout": 20, "quality_margin": 0.02})
    # a logging policy that explores every tier often (the plumbing of retraining, not the
    # shipped exploration): a weak prior and bound, no cap on exploration's cost, many probes
    raw["exploration_rate"] = 0.5
    raw["learning"] = {**raw["learning"], "prior_strength": 1.0, "bound": 0.5,
                       "explore_cost": 1.0, "probe_share": 0.5}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def fill_store(config_file: Path, n: int = 200) -> Settings:
    settings = load_settings(config_file)
    app = create_app(config_file, embedder_factory=lambda cfg: FakeEmbedder())
    rng = np.random.default_rng(0)
    with TestClient(app) as client:
        for i in range(n):
            prompt = f"{rng.choice(EASY + HARD)} case {i}"
            body = {"prompt": prompt, "role": "solver"}
            if i % 5 == 0:  # a step the agent pins to medium, which the map rarely explores
                body["tier"] = "medium"
            d = client.post("/route", json=body).json()
            r = client.post("/feedback", json={"decision_id": d["decision_id"],
                                               "quality": truth(prompt, d["tier"])})
            assert r.status_code == 201, r.text
    return settings


def retrain_kwargs(config_file: Path, out: Path, tmp_path: Path) -> dict[str, Any]:
    """The arguments `tier-router retrain --config FILE --out OUT` would pass."""
    return {"settings": load_settings(config_file), "out": out, "data_dir": None,
            "public_sources": None, "mix_public": False, "since": None,
            "cache_dir": tmp_path / "cache", "seed": 0}


def test_retrain_compare_promote_and_roll_back(config_file: Path, tmp_path: Path) -> None:
    settings = fill_store(config_file)
    out = tmp_path / "candidate"
    report = retrain(**retrain_kwargs(config_file, out, tmp_path), embedder=FakeEmbedder())
    assert report["logged"] == {"calls": 200, "train": 140, "holdout": 60,
                                "explored_share": pytest.approx(report["logged"]
                                                                ["explored_share"])}
    assert 0.1 < report["logged"]["explored_share"] < 0.5
    off = report["offpolicy"]
    for who in ("serving", "candidate"):
        assert off[who]["n"] == 60 and 0 <= off[who]["dr"] <= 1.2
        # the map explores where it is unsure, not uniformly: fewer logged calls share a
        # policy's tier than under uniform exploration
        assert 0.3 < off[who]["support"] <= 1.0
    assert off["dr_difference"]["low"] <= off["dr_difference"]["mean"] <= \
        off["dr_difference"]["high"]
    assert json.loads((out / REPORT_FILE).read_text())["candidate"]["router_version"] == \
        report["candidate"]["router_version"]

    old_version = json.loads((settings.model_dir / "metadata.json").read_text())
    result = promote(out, settings, url=None, force=True)
    assert result["promoted"] and Path(result["previous"]).parent == \
        history_dir(settings.model_dir)
    installed = json.loads((settings.model_dir / "metadata.json").read_text())
    assert installed["router_version"] == report["candidate"]["router_version"]
    rollback(settings, url=None)
    restored = json.loads((settings.model_dir / "metadata.json").read_text())
    assert restored["router_version"] == old_version["router_version"]


def test_retrain_needs_stored_text_or_features(config_file: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(config_file.read_text())
    raw["store"]["prompt_storage"] = "hash"
    raw["store"]["feature_storage"] = "none"
    config_file.write_text(yaml.safe_dump(raw))
    fill_store(config_file, n=5)
    with pytest.raises(RouterError, match="feature_storage: embedding"):
        retrain(**retrain_kwargs(config_file, tmp_path / "c", tmp_path),
                embedder=FakeEmbedder())


def test_retrain_learns_from_stored_features_without_any_text(
    config_file: Path, tmp_path: Path
) -> None:
    raw = yaml.safe_load(config_file.read_text())
    raw["store"]["prompt_storage"] = "hash"  # the shipped default: no text, embeddings kept
    config_file.write_text(yaml.safe_dump(raw))
    fill_store(config_file)
    out = tmp_path / "candidate"
    report = retrain(**retrain_kwargs(config_file, out, tmp_path), embedder=FakeEmbedder())
    assert report["logged"]["calls"] == 200 and report["training_prompts"] == 140
    assert report["offpolicy"]["candidate"]["n"] == 60
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_retrain_skips_and_counts_features_of_another_embedder(
    config_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = yaml.safe_load(config_file.read_text())
    raw["store"]["prompt_storage"] = "hash"
    config_file.write_text(yaml.safe_dump(raw))
    fill_store(config_file, n=5)

    class Other(FakeEmbedder):
        name = "other-embedder"

    with pytest.raises(RouterError, match="features of another embedder"):
        retrain(**retrain_kwargs(config_file, tmp_path / "c", tmp_path), embedder=Other())


def report_with(dr: tuple[float, float], cost: tuple[float, float], holdout: int = 100,
                apgr: tuple[float, float] | None = None) -> dict:
    report = {"logged": {"holdout": holdout}, "offpolicy": {
        "serving": {"dr": dr[0], "cost_usd": cost[0]},
        "candidate": {"dr": dr[1], "cost_usd": cost[1]}}, "public": None}
    if apgr is not None:
        report["public"] = {"serving": {"apgr_mean": apgr[0]},
                            "candidate": {"apgr_mean": apgr[1]}}
    return report


@pytest.mark.parametrize(("report", "ok"), [
    (report_with((0.80, 0.80), (1.0, 1.0)), True),
    (report_with((0.80, 0.795), (1.0, 1.04)), True),  # within both margins
    (report_with((0.80, 0.78), (1.0, 0.5)), False),  # cheaper but worse
    (report_with((0.80, 0.90), (1.0, 1.2)), False),  # better but too dear
    (report_with((0.80, 0.85), (1.0, 1.0), holdout=10), False),  # too little evidence
    (report_with((0.80, 0.85), (1.0, 1.0), apgr=(0.5, 0.3)), False),  # public regression
    (report_with((0.80, float("nan")), (1.0, 1.0)), False),
])
def test_judge(report: dict, ok: bool) -> None:
    rule = PromotionConfig(quality_margin=0.01, cost_margin=0.05, min_holdout=50)
    verdict, reasons = judge(report, rule)
    assert verdict is ok
    assert any(line.startswith("refused") for line in reasons) is (not ok)


def test_export_round_trips_through_the_trace_reader(config_file: Path, tmp_path: Path) -> None:
    settings = fill_store(config_file, n=12)
    store = TraceStore(settings.store).open()
    for suffix in (".jsonl", ".parquet"):
        written, skipped = export_traces(store.outcome_rows(), tmp_path / f"out{suffix}")
        assert (written, skipped) == (12, {})
        frame, errors = read_traces(tmp_path / f"out{suffix}", strict=True)
        assert errors == [] and len(frame) == 12
        assert set(frame["model"]) <= {m for t in settings.tiers for m in t.models}
        assert frame["propensity"].between(0, 1).all()
    first = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert first["role"] == "solver" and first["prompt"] and first["cost_estimated"] is True
    assert "cost_usd" not in first  # an estimate is never written as a real cost


def test_ips_and_dr_are_unbiased_under_uniform_logging() -> None:
    rng = np.random.default_rng(0)
    n, tiers = 20_000, ["a", "b", "c"]
    true_q = np.array([0.3, 0.6, 0.9])
    logged = rng.integers(0, 3, n)
    reward = (rng.random(n) < true_q[logged]).astype(float)
    propensity = np.full(n, 1 / 3)
    target = np.full(n, 1)  # always "b": true value 0.6
    cost = np.tile([1.0, 2.0, 3.0], (n, 1))
    q_hat = np.tile([0.5, 0.5, 0.5], (n, 1))  # a wrong reward model: DR stays unbiased
    value = policy_value(reward, logged, target, propensity, q_hat, cost, tiers)
    assert value.ips == pytest.approx(0.6, abs=0.03)
    assert value.snips == pytest.approx(0.6, abs=0.02)
    assert value.dr == pytest.approx(0.6, abs=0.03)
    assert value.support == pytest.approx(1 / 3, abs=0.02) and value.cost_usd == 2.0
    assert value.tier_share == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert tier_means(reward, logged, propensity, 3) == pytest.approx(true_q, abs=0.03)
    mean, low, high = paired_dr_ci(reward, logged, np.full(n, 0), target, propensity, q_hat)
    assert low < mean < high and mean == pytest.approx(0.3, abs=0.05)


def test_spend_and_export_commands(config_file: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from router.cli.main import main

    fill_store(config_file, n=8)
    assert main(["spend", "--config", str(config_file), "--by", "role", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["rows"]
    assert row["key"] == "solver" and row["calls"] == 8 and row["estimated_calls"] == 8
    assert main(["spend", "--config", str(config_file), "--by", "tier"]) == 0
    assert "estimated" in capsys.readouterr().out
    out = tmp_path / "traces.parquet"
    assert main(["export", "--config", str(config_file), "--out", str(out)]) == 0
    assert "wrote 8 traces" in capsys.readouterr().out
    assert len(read_traces(out, strict=True)[0]) == 8
