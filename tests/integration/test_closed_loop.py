"""The whole loop on the real service: route real prompts, post their real outcomes, retrain from
the store, and promote or refuse the candidate by its measured numbers.

Prompts are RouterBench test questions (ARC-Challenge, MBPP, Winogrande), whose every model's
0/1 correctness and real cost are known: for each decision the outcome posted is that of a
real model of the chosen tier on that very question, as if the agent had called it. Decisions
explore (rate 0.2) so the held-out comparison has support off the serving policy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from router.config import load_settings
from tests.conftest import SHARED_DATA
from tests.integration.service import ROOT, SHIPPED_MODEL, Server, write_config
from training.adapters import load_routerbench
from training.traffic.promote import judge

N_PROMPTS = 360
pytestmark = pytest.mark.slow


def real_outcomes(n: int, seed: int = 0) -> list[dict]:
    """`n` test prompts, each with {tier: [(model, quality, cost), ...]} from RouterBench."""
    settings = load_settings(None)
    tier_of = settings.tier_of_training_model()
    frame = load_routerbench(SHARED_DATA)
    frame = frame[(frame["split"] == "test") & frame["model"].isin(tier_of)]
    prompts = sorted(frame["prompt_id"].unique())
    chosen = np.random.default_rng(seed).choice(prompts, size=n, replace=False)
    out = []
    for _, rows in frame[frame["prompt_id"].isin(chosen)].groupby("prompt_id", sort=False):
        by_tier: dict[str, list] = {}
        for row in rows.sort_values("model").itertuples():
            by_tier.setdefault(tier_of[row.model], []).append(
                (row.model, float(row.quality), float(row.cost_usd)))
        out.append({"prompt": rows["prompt"].iloc[0], "source": rows["source"].iloc[0],
                    "tiers": by_tier})
    order = np.random.default_rng(seed + 1).permutation(len(out))
    return [out[i] for i in order]  # traffic mixes the datasets; the held-out tail does too


@pytest.fixture(scope="module")
def loop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SHIPPED_MODEL / "metadata.json").is_file():
        pytest.skip(f"the shipped model is not in {SHIPPED_MODEL} yet (tier-router train)")
    if not (SHARED_DATA / "routerbench").is_dir():
        pytest.skip(f"no public data at {SHARED_DATA}")
    return tmp_path_factory.mktemp("loop")


def test_route_feedback_retrain_promote(loop_dir: Path) -> None:
    model_dir = loop_dir / "models" / "default"
    shutil.copytree(SHIPPED_MODEL, model_dir)
    config = write_config(
        loop_dir / "config.yaml", model_dir=str(model_dir),
        store={"url": f"sqlite:///{loop_dir / 'traces.db'}", "prompt_storage": "full"},
        embedder={"backend": "torch", "threads": 2}, exploration_rate=0.2, exploration_seed=0,
        quality_target=0.7,  # where the policy mixes tiers on these benchmarks
        learning={"prior_confidence": 0.0},  # the model decides cold calls: tiers mix at once
        promotion={"holdout_fraction": 0.3, "min_holdout": 50, "quality_margin": 0.01,
                   "cost_margin": 0.05},
    )
    calls = real_outcomes(N_PROMPTS)
    server = Server(config, loop_dir / "server.log").start(ready="/readyz")
    numbers: dict = {"prompts": len(calls)}
    try:
        serving_version = httpx.get(server.url + "/readyz").json()["router_version"]
        posted = 0
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for i, call in enumerate(calls):
                d = client.post("/route", json={"prompt": call["prompt"], "role":
                                                call["source"], "run_id": f"e2e-{i // 20}"})
                assert d.status_code == 200, d.text
                decision = d.json()
                options = call["tiers"].get(decision["tier"])
                if not options:
                    continue  # no real model of that tier answered this question
                model, quality, cost = options[i % len(options)]
                r = client.post("/feedback", json={
                    "decision_id": decision["decision_id"], "quality": quality,
                    "model_used": model, "cost_usd": cost})
                assert r.status_code == 201, r.text
                posted += 1
            numbers["feedback_posted"] = posted
            numbers["spend_by_tier"] = client.get("/spend", params={"by": "tier"}).json()["rows"]
            metrics = client.get("/metrics").text
        assert "tier_router_window_success_rate" in metrics
        assert posted >= 0.8 * len(calls)

        candidate = loop_dir / "candidate"
        cache = loop_dir / "cache"  # a copy: other runs may be writing the project's cache
        if (ROOT / ".cache" / "embeddings").is_dir():
            shutil.copytree(ROOT / ".cache" / "embeddings", cache)
        retrain = subprocess.run(
            [sys.executable, "-m", "router.cli.main", "retrain", "--config", str(config),
             "--out", str(candidate), "--data-dir", str(SHARED_DATA),
             "--public-sources", "routerbench", "--mix-public",
             "--cache-dir", str(cache)],
            cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )
        assert retrain.returncode == 0, retrain.stderr[-3000:]
        report = json.loads((candidate / "retrain_report.json").read_text())
        numbers["retrain"] = {"logged": report["logged"], "offpolicy": report["offpolicy"],
                              "public": report["public"], "stdout": retrain.stdout}
        expected, reasons = judge(report, load_settings(config).promotion)

        promote = subprocess.run(
            [sys.executable, "-m", "router.cli.main", "promote", "--config", str(config),
             "--candidate", str(candidate), "--url", server.url],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        numbers["promote"] = {"exit": promote.returncode, "stdout": promote.stdout}
        assert promote.returncode == (0 if expected else 1), promote.stdout + promote.stderr
        now = httpx.get(server.url + "/readyz").json()
        if expected:
            assert now["router_version"] == report["candidate"]["router_version"]
            assert any((model_dir.parent / "default.history").iterdir())
        else:
            assert now["router_version"] == serving_version
        assert httpx.post(server.url + "/route", json={"prompt": "2+2?"}).status_code == 200
    finally:
        (loop_dir / "numbers.json").write_text(json.dumps(numbers, indent=2, default=str))
        print("\n" + json.dumps({k: v for k, v in numbers.items() if k != "spend_by_tier"},
                                indent=1, default=str)[:6000])
        server.stop()
