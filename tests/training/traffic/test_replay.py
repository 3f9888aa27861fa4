"""`tier-router replay` plumbing, over the app's HTTP API (TestClient), on synthetic traffic.

The prompts and labels are made up (the conftest's 'prove'/'theorem' prompts fail on small),
so this checks the replay's bookkeeping, not routing quality: the live replay on the shared
data does that.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import EASY, HARD, LOOPBACK, FakeEmbedder
from training.labels import PromptTable
from training.traffic.replay import (
    Replay,
    Traffic,
    format_replay,
    observed_tiers,
    replay_settings,
    restrict_tiers,
    summarise,
)


def synthetic_traffic(n: int = 120) -> Traffic:
    rng = np.random.default_rng(0)
    prompts = [f"{rng.choice(HARD if i % 2 else EASY)} case {i}" for i in range(n)]
    hard = np.array([i % 2 for i in range(n)], float)
    labels = np.stack([1 - hard, 1 - 0.5 * hard, np.ones(n)], axis=1)
    frame = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "prompt": prompts,
                          "messages": [None] * n, "source": "synthetic", "dataset": "synthetic",
                          "split": "train", "task": None})
    return Traffic(PromptTable(frame, labels, np.ones(n), ["small", "medium", "large"]),
                   "synthetic")


def test_one_order_resets_learns_freezes_and_scores_over_http(settings: Settings) -> None:
    traffic = synthetic_traffic()
    exploring = settings.model_copy(update={"exploration_rate": 0.3, "exploration_seed": 1})
    app = create_app(settings=exploring, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as http:
        replay = Replay(http, traffic, exploring)
        first = replay.order(seed=0, learn=60, score=30, window=20)
        second = replay.order(seed=1, learn=60, score=30, window=20)
        state = http.get("/admin/learning").json()
    for order in (first, second):
        assert order["outcomes"] == 60 and len(order["curve"]) == 3
        assert order["state_revision"] == 60  # reset between orders: one order's outcomes
        assert order["prior"]["n"] == order["frozen"]["n"] == 30
        for window in (order["prior"], order["frozen"], *order["curve"]):
            assert sum(window["share"].values()) == pytest.approx(1.0)
            assert 0.0 <= window["realised"] <= 1.0
    assert state["revision"] == 60
    report = {"source": "synthetic", "url": "test", "prior": "synthetic-test",
              "tiers": exploring.tier_names, "learn": 60, "score": 30,
              "orders": [first, second], "summary": summarise([first, second], [0.6, 0.6])}
    text = format_replay(report)
    assert "learning curve" in text and "full-information ceiling 0.600" in text


def test_a_replay_serves_only_the_tiers_the_source_has_outcomes_for(settings: Settings) -> None:
    traffic = synthetic_traffic()
    traffic.table.labels[:, 0] = np.nan  # no small outcomes: a (medium, large) deployment
    tiers = observed_tiers(traffic.table)
    assert tiers == ["medium", "large"]
    two = replay_settings(settings, tiers)
    assert two.tier_names == ["medium", "large"] and two.safe_tier == "large"
    assert set(two.task_rules) == {"plan", "critique"}  # both name medium or large
    assert restrict_tiers(traffic, tiers).table.labels.shape == (120, 2)
    only_small = replay_settings(settings, ["small", "medium"])
    assert "plan" not in only_small.task_rules and only_small.safe_tier == "medium"


def test_summarise_gives_the_gain_and_its_interval() -> None:
    def order(prior: float, frozen: float) -> dict:
        window = {"apgr": 0.0, "savings_at_95": 0.1, "predicted": 0.7, "realised": 0.8,
                  "share": {"small": 0.2, "large": 0.8}}
        return {"prior": {**window, "apgr": prior}, "frozen": {**window, "apgr": frozen}}

    s = summarise([order(0.5, 0.56), order(0.5, 0.58), order(0.5, 0.54)], [0.6])
    assert s["apgr_gain"] == pytest.approx(0.06)
    low, high = s["apgr_gain_ci"]
    assert low < 0.06 < high and low == pytest.approx(0.06 - 4.30 * 0.02 / np.sqrt(3))
    assert s["strongest"] == "large" and s["strongest_share_prior"] == pytest.approx(0.8)
