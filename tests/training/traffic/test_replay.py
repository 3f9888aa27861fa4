"""`tier-router replay` plumbing, over the app's HTTP API (TestClient), on synthetic traffic.

The prompts and labels are made up (the conftest's 'prove'/'theorem' prompts fail on small),
so this checks the replay's bookkeeping, not routing quality: the live replay on the shared
data does that.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import EASY, HARD, LOOPBACK, FakeEmbedder, synthetic_model
from training.labels import PromptTable
from training.selection import Candidate
from training.traffic import replay as rp
from training.traffic.replay import (
    Replay,
    Traffic,
    format_replay,
    observed_tiers,
    replay_settings,
    restrict_tiers,
    summarise,
)
from training.traffic.replay_metrics import (
    KNOBS,
    baselines_at,
    category_ceiling,
    curve_stats,
    shares,
    window_stats,
)


def synthetic_traffic(n: int = 120, tasks: bool = False) -> Traffic:
    rng = np.random.default_rng(0)
    prompts = [f"{rng.choice(HARD if i % 2 else EASY)} case {i}" for i in range(n)]
    hard = np.array([i % 2 for i in range(n)], float)
    labels = np.stack([1 - hard, 1 - 0.5 * hard, np.ones(n)], axis=1)
    frame = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "prompt": prompts,
                          "messages": [None] * n, "source": "synthetic", "dataset": "synthetic",
                          "split": "train",
                          "task": [("proof" if i % 2 else "chat") if tasks else None
                                   for i in range(n)]})
    return Traffic(PromptTable(frame, labels, np.ones(n), ["small", "medium", "large"]),
                   "synthetic")


def test_one_order_resets_learns_freezes_and_sweeps_over_http(settings: Settings) -> None:
    traffic = synthetic_traffic(tasks=True)
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
        assert order["learning"]["n"] == 60
        assert order["after"]["n"] == 30  # the scored calls once more, live
        assert order["after"]["random_quality"] <= 1.0
        for window in (order["prior"], order["frozen"], order["learning"], *order["curve"]):
            assert sum(window["share"].values()) == pytest.approx(1.0)
            assert 0.0 <= window["realised"] <= 1.0
            assert 0.0 < window["cost_vs_strongest"] <= 1.0
        for sweep in (order["prior"], order["frozen"]):
            assert 0.0 <= sweep["apgr"] <= 1.0 and sweep["by_source"] == {}
            # 'proof' calls fail on small, 'chat' calls never do (synthetic labels)
            assert sweep["category_ceiling"] == pytest.approx(0.75, abs=0.1)
            assert sweep["length_quality"] <= 1.0 and sweep["random_quality"] <= 1.0
    assert state["revision"] == 60  # the live calls after the freeze taught nothing
    report = {"source": "synthetic", "url": "test", "prior": "synthetic-test",
              "tiers": exploring.tier_names, "learn": 60, "score": 30,
              "orders": [first, second], "summary": summarise([first, second], [0.6, 0.6])}
    text = format_replay(report)
    assert "while learning" in text and "full-information ceiling 0.600" in text


class Recorder:
    """An HTTP client that records the /route bodies and answers from the given tier."""

    def __init__(self, tier: str):
        self.tier, self.bodies = tier, []

    def post(self, url: str, json: dict, headers: dict) -> object:
        self.bodies.append(json)
        answer = {"tier": self.tier, "scores": {"medium": 0.5, "large": 0.6},
                  "estimated_tokens_in": 10, "reason": "classifier", "decision_id": "d",
                  "model": "m"}
        return type("R", (), {"status_code": 200, "json": lambda self: answer})()


@pytest.mark.parametrize("with_task", [True, False])
def test_a_sweep_sends_every_knob_dry_run_and_the_task_only_when_asked(
    settings: Settings, with_task: bool
) -> None:
    traffic = restrict_tiers(synthetic_traffic(40, tasks=True), ["medium", "large"])
    two = replay_settings(settings, ["medium", "large"])
    http = Recorder("large")
    out = Replay(http, traffic, two, with_task=with_task).sweep(np.arange(30), "t")
    assert len(http.bodies) == 30 * (1 + len(KNOBS))
    assert all(b["dry_run"] is True for b in http.bodies)
    assert sorted({b.get("quality_target") for b in http.bodies} - {None}) == sorted(KNOBS)
    assert all(("task" in b) == with_task for b in http.bodies)
    assert all("role" not in b for b in http.bodies)  # no signal the data does not have
    assert {b.get("task") for b in http.bodies} == ({"proof", "chat"} if with_task else {None})
    assert out["quality_vs_strongest"] == 1.0 and out["cost_vs_strongest"] == 1.0
    assert out["share"] == {"medium": 0.0, "large": 1.0}


# Synthetic labels below: the numbers are worked out by hand.


def test_a_role_is_sent_with_every_call_only_when_given(settings: Settings) -> None:
    traffic = restrict_tiers(synthetic_traffic(40), ["medium", "large"])
    http = Recorder("large")
    Replay(http, traffic, replay_settings(settings, ["medium", "large"]),
           role="planner").route(np.arange(5), "t")
    assert [b["role"] for b in http.bodies] == ["planner"] * 5


def test_shares_are_of_always_strongests_quality_and_cost() -> None:
    labels = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0], [np.nan, 1.0]])
    cost = np.array([[1.0, 5.0], [1.0, 5.0], [2.0, 10.0], [1.0, 5.0]])
    quality, spend = shares(np.array([1, 0, 0, 0]), labels, cost)
    assert quality == pytest.approx(1.0)  # the unlabelled call is left out of quality
    assert spend == pytest.approx((5 + 1 + 2 + 1) / 25)


def test_a_window_reports_quality_and_cost_against_strongest(settings: Settings) -> None:
    two = replay_settings(settings, ["medium", "large"])
    decisions = [{"tier": t, "scores": {"medium": 0.8, "large": 0.9}, "reason": r,
                  "estimated_tokens_in": 100} for t, r in
                 [("medium", "classifier"), ("large", "explore"), ("medium", "classifier"),
                  ("large", "classifier")]]
    labels = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    w = window_stats(decisions, labels, two)
    assert w["quality_vs_strongest"] == pytest.approx(2 / 3)
    ratio = two.tiers[0].estimate_cost(100, two.expected_output_tokens) / two.tiers[
        1].estimate_cost(100, two.expected_output_tokens)
    assert w["cost_vs_strongest"] == pytest.approx((2 * ratio + 2) / 4)
    assert w["explored"] == 0.25 and w["share"] == {"medium": 0.5, "large": 0.5}
    assert w["predicted"] == pytest.approx(0.85) and w["realised"] == pytest.approx(0.5)


def test_the_category_ceiling_ranks_categories_by_their_true_gap() -> None:
    # 'a' always needs large, 'b' never: moving 'a' first recovers the whole gap at half the
    # calls on large, so the area is 0.25 (rising) + 0.5 (flat at 1) = 0.75
    cats = np.array(["b"] * 50 + ["a"] * 50)
    labels = np.stack([np.r_[np.ones(50), np.zeros(50)], np.ones(100)], axis=1)
    assert category_ceiling(labels, cats) == pytest.approx(0.75)
    # both categories need large on every other call: knowing the category ranks nothing
    half = np.tile([0.0, 1.0], 50)
    assert category_ceiling(np.stack([half, np.ones(100)], axis=1), cats) == pytest.approx(0.5)
    unlabelled = np.vstack([labels, [[np.nan, 1.0]] * 10])  # calls missing a tier do not count
    assert category_ceiling(unlabelled, np.r_[cats, ["c"] * 10]) == pytest.approx(0.75)


def test_a_perfect_sweep_recovers_the_whole_gap_and_the_baselines_sit_below_it() -> None:
    rng = np.random.default_rng(0)
    n = 200
    needs_large = rng.random(n) < 0.5
    labels = np.stack([(~needs_large).astype(float), np.ones(n)], axis=1)
    cost = np.tile([1.0, 5.0], (n, 1))
    knobs = np.linspace(0, 1, 11)
    order = np.argsort(~needs_large, kind="stable")  # the calls that need large go first
    picks = np.zeros((len(knobs), n), np.intp)
    for k, share in enumerate(knobs):
        picks[k, order[: int(round(share * n))]] = 1
    stats = curve_stats(picks, labels, cost)
    assert stats["apgr"] > 0.7 and stats["savings_at_95"] > 0.3
    base = baselines_at(0.6, labels, cost, rng.integers(10, 100, n))
    # cost 0.6 of always-large's (3 of 5) is half the calls on each tier
    assert base["random_quality"] == pytest.approx(0.5 * labels[:, 0].mean() + 0.5)
    assert 0.3 < base["length_apgr"] < 0.7  # length carries no signal here


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


def test_summarise_gives_the_gain_its_interval_and_the_worst_window() -> None:
    def order(prior: float, frozen: float, worst: float) -> dict:
        window = {"apgr": 0.0, "savings_at_95": 0.1, "predicted": 0.7, "realised": 0.8,
                  "quality_vs_strongest": 0.97, "cost_vs_strongest": 0.6}
        return {"prior": {**window, "apgr": prior, "by_source": {}},
                "frozen": {**window, "apgr": frozen, "by_source": {}}, "learning": window,
                "curve": [window, {**window, "quality_vs_strongest": worst}]}

    s = summarise([order(0.5, 0.56, 0.95), order(0.5, 0.58, 0.91), order(0.5, 0.54, 0.99)],
                  [0.6])
    assert s["apgr_gain"] == pytest.approx(0.06)
    low, high = s["apgr_gain_ci"]
    assert low < 0.06 < high and low == pytest.approx(0.06 - 4.30 * 0.02 / np.sqrt(3))
    assert s["worst_window_quality"] == pytest.approx(0.91)
    assert s["learning"]["cost_vs_strongest"] == pytest.approx(0.6)


def test_mixed_sources_are_judged_per_source_beside_the_baselines(settings: Settings) -> None:
    traffic = restrict_tiers(synthetic_traffic(40), ["medium", "large"])
    traffic.table.prompts["source"] = ["a" if i < 30 else "b" for i in range(40)]
    two = replay_settings(settings, ["medium", "large"])
    # hand-made decisions: medium on the easy calls (even), large on the hard ones
    decisions = [{"tier": "large" if i % 2 else "medium", "scores": {"medium": 0.5, "large": 0.9},
                  "estimated_tokens_in": 10 + i, "reason": "classifier"} for i in range(40)]
    out = Replay(Recorder("large"), traffic, two).judge(decisions, np.arange(40))
    assert set(out["by_source"]) == {"a", "b"}
    assert out["by_source"]["a"]["n"] == 30 and out["by_source"]["b"]["n"] == 10
    assert out["quality_vs_strongest"] == 1.0  # medium answers the easy calls as well
    assert 0.0 < out["cost_vs_strongest"] < 1.0
    assert out["by_source"]["a"]["length_quality"] <= 1.0
    assert out["random_quality"] < 1.0  # a random mixture at that cost misses hard calls
    alone = restrict_tiers(synthetic_traffic(40), ["medium", "large"])
    assert Replay(Recorder("large"), alone, two).judge(decisions, np.arange(40))[
        "by_source"] == {}


def test_a_holdout_prior_fitted_from_the_same_inputs_is_reused(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [{"path": "x/train.json", "sha256": "ab", "bytes": 3}]
    monkeypatch.setattr(rp, "load_outcomes", lambda data_dir, extra: (pd.DataFrame(), files))

    def refit(*args: object) -> None:
        raise LookupError("fitted again")

    monkeypatch.setattr(rp, "tier_table", refit)
    recipe = Candidate("tqr", {"C": 1.0})
    cache = SimpleNamespace(embedder=FakeEmbedder())
    out = synthetic_model(tmp_path / "prior")
    meta = json.loads((out / "metadata.json").read_text())
    meta.update({"router_version": "lodo-x-tqr-seed0", "head": recipe.as_metadata(),
                 "embedder_backend": "fake", "seed": 0, "data": files, "held_out_source": "x",
                 "tier_models": {t.name: list(t.training_models) for t in settings.tiers}})
    (out / "metadata.json").write_text(json.dumps(meta))
    assert rp.holdout_prior(settings, tmp_path, "x", recipe, out, cache, seed=0) == out
    with pytest.raises(LookupError, match="fitted again"):  # another seed: not the same prior
        rp.holdout_prior(settings, tmp_path, "x", recipe, out, cache, seed=1)
    with pytest.raises(LookupError, match="fitted again"):  # another data file
        monkeypatch.setattr(rp, "load_outcomes", lambda data_dir, extra: (
            pd.DataFrame(), [{**files[0], "sha256": "cd"}]))
        rp.holdout_prior(settings, tmp_path, "x", recipe, out, cache, seed=0)
    with pytest.raises(LookupError, match="fitted again"):  # nothing there yet
        rp.holdout_prior(settings, tmp_path, "x", recipe, tmp_path / "none", cache, seed=0)
