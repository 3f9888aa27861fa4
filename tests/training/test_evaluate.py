"""`tier-router evaluate` on synthetic data: the maths, the policy sweep, the report and its
reproducibility. No real embedder: prompts and labels are made up in the test
(`tests.training.synthetic_eval`), embeddings come from a hash-seeded fake."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import training.evaluate as evaluate
import training.scoring as scoring
from router.cli.main import main
from router.config import load_settings
from router.decision.policy import decide
from tests.training.synthetic_eval import (
    FakeEmbedder,
    save_tiny_model,
    synthetic_table,
    write_traces,
)
from training.baselines import length_choices
from training.embed_cache import Featurised
from training.evaluate import evaluation_set, lodo_report
from training.report import scope_report
from training.scoring import TARGETS, policy_choices
from training.selection import Candidate, pair_curve, sweep_apgr


@pytest.fixture(scope="module")
def settings():
    return load_settings()


def _set(settings, n=1000, seed=0, task=None, scorer="perfect"):
    table, views = synthetic_table(n, seed, task)
    rng = np.random.default_rng(seed + 7)
    scores = table.labels if scorer == "perfect" else rng.uniform(size=table.labels.shape)
    return evaluation_set(table, views, settings, {"router": scores})


def test_perfect_scorer_recovers_the_gap_and_random_does_half(settings):
    perfect = scope_report(_set(settings), seed=0, n_boot=20)
    random = scope_report(_set(settings, scorer="random"), seed=0, n_boot=20)
    assert perfect["pairs"]["small/large"]["methods"]["router"]["apgr"] > 0.9
    assert random["pairs"]["small/large"]["methods"]["router"]["apgr"] == pytest.approx(0.5,
                                                                                       abs=0.1)
    low, high = perfect["pairs"]["small/large"]["methods"]["router"]["apgr_ci"]
    assert low <= perfect["pairs"]["small/large"]["methods"]["router"]["apgr"] <= high
    # A random scorer may never reach 95% of large's quality (NaN): the policy's fallback at
    # target 1.0 is the best-scored tier, not always-large.
    assert perfect["savings_at_95"]["router"] > np.nan_to_num(random["savings_at_95"]["router"],
                                                              nan=-1.0)
    assert perfect["savings_at_95"]["router"] > 0.7


def test_pair_curve_is_the_selection_sweep():
    rng = np.random.default_rng(3)
    score, q_weak, q_strong = rng.uniform(size=200), rng.integers(0, 2, 200), np.ones(200)
    share, quality = pair_curve(score, q_weak.astype(float), q_strong)
    assert share[0] == 0 and share[-1] == 1
    assert quality[-1] == pytest.approx(1.0)
    from training.metrics import apgr

    assert apgr(share, quality, q_weak.mean(), 1.0) == pytest.approx(
        sweep_apgr(score, q_weak.astype(float), q_strong))


def test_sweep_calls_the_service_policy(settings, monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[2])
        return decide(*args, **kwargs)

    monkeypatch.setattr(scoring, "decide", spy)
    _set(settings, n=50)
    assert len(calls) == 50 * len(TARGETS)
    assert sorted(set(calls)) == sorted(float(t) for t in TARGETS)


def test_task_rule_in_the_config_changes_the_curve(settings):
    assert settings.task_rules["plan"].min_tier == "large"
    plain = _set(settings, n=200)
    planned = _set(settings, n=200, task="plan")
    assert (plain.choices["router"] != planned.choices["router"]).any()
    assert (planned.choices["router"] == 2).all()  # plan -> at least large, at every target


def test_context_window_in_the_config_changes_the_curve(settings):
    table, views = synthetic_table(200)
    tiers = [settings.tiers[0].model_copy(update={"context_window": 450}), *settings.tiers[1:]]
    narrow = settings.model_copy(update={"tiers": tiers})
    tasks = [None] * len(views)
    wide_choices = policy_choices(table.labels, views, tasks, settings)
    narrow_choices = policy_choices(table.labels, views, tasks, narrow)
    too_long = np.array([v.tokens_in + settings.expected_output_tokens > 450 for v in views])
    assert too_long.any() and (~too_long).any()
    assert (narrow_choices[:, too_long] > 0).all()
    assert (narrow_choices[:, ~too_long] == wide_choices[:, ~too_long]).all()


def test_length_path_runs_from_cheapest_to_strongest():
    length = np.arange(100.0)
    choices = length_choices(length, 3, np.array([0.0, 0.5, 1.0]))
    assert (choices[0] == 0).all() and (choices[-1] == 2).all()
    middle = np.bincount(choices[1], minlength=3) / 100
    assert middle.tolist() == [0.5, 0.25, 0.25]
    assert choices[1, -1] == 2 and choices[1, 0] == 0  # the longest go up first


def test_lodo_refits_without_each_group(settings):
    n = 240
    table, views = synthetic_table(n, seed=5)
    groups = np.array(["routerbench/mbpp", "alpacaeval", "openmodels7/mbpp"])[np.arange(n) % 3]
    table.prompts["source"] = groups
    table.prompts["split"] = np.where(np.arange(n) % 2 == 0, "train", "test")
    embeddings = FakeEmbedder().encode([v.text for v in views])
    data = Featurised(table, embeddings, np.zeros((n, 6), np.float32))
    candidate = Candidate("logreg", {"head": "logreg", "C": 0.05, "calibration": None})
    report = lodo_report(data, views, settings, candidate, seed=0, n_boot=10)
    assert set(report) == {"all", "routerbench/mbpp", "alpacaeval"}  # openmodels7 never held out
    assert report["alpacaeval"]["n_prompts"] == int(((groups == "alpacaeval")
                                                     & (table.prompts["split"] == "test")).sum())
    assert set(report["all"]["pairs"]["small/large"]["methods"]) == {"router", "knn", "length"}


def _run(tmp_path: Path, monkeypatch, name: str, seed: int = 0) -> dict:
    """`tier-router evaluate` on synthetic traces, through the command line (fake encoder)."""
    monkeypatch.setattr(evaluate, "training_embedder", lambda settings, backend: FakeEmbedder())
    model = tmp_path / "model"
    if not model.exists():
        save_tiny_model(model)
        write_traces(tmp_path / "traces.jsonl", 160)
    argv = ["evaluate", "--model", str(model), "--traces", str(tmp_path / "traces.jsonl"),
            "--out", str(tmp_path / name), "--cache-dir", str(tmp_path / "cache"),
            "--seed", str(seed), "--strict", "--bootstrap", "20"]
    assert main(argv) == 0
    return json.loads((tmp_path / name / "report.json").read_text())


def test_report_has_its_keys_and_files(tmp_path, monkeypatch, capsys):
    report = _run(tmp_path, monkeypatch, "report")
    for key in ("model_dir", "router_version", "data_files", "seed", "bootstrap", "config",
                "definitions", "in_distribution", "summary", "timings"):
        assert key in report
    assert report["router_version"] == "tiny-test-model"
    assert "ceiling" not in report  # traces only: no public benchmark to bound the router by
    assert set(report["in_distribution"]) == {"all", "synth", "synth/a", "synth/b"}
    scope = report["in_distribution"]["all"]
    for key in ("tiers", "pairs", "calibration", "curves", "savings_at_95", "savings_at_95_ci",
                "realised_vs_target", "random", "curve_tiers"):
        assert key in scope
    assert set(scope["curves"]) == {"router", "length", "oracle"}  # no train split: no kNN
    assert len(scope["curves"]["router"]) == len(TARGETS)
    assert {"apgr", "cpt50", "cpt80", "apgr_ci"} <= set(
        scope["pairs"]["small/large"]["methods"]["router"])
    assert {"ece", "counts"} <= set(scope["calibration"]["large"])
    out = tmp_path / "report"
    for name in ("curve_all.csv", "curve_synth_a.csv", "quality_cost_all.png",
                 "reliability.png"):
        assert (out / name).stat().st_size > 0
    header = (out / "curve_all.csv").read_text().splitlines()[0]
    assert header == ("target,cost,quality,share_small,share_medium,share_large,"
                      "realised_success")
    assert "savings95" in capsys.readouterr().out


def test_same_seed_gives_the_same_report(tmp_path, monkeypatch):
    first = _run(tmp_path, monkeypatch, "first")
    second = _run(tmp_path, monkeypatch, "second")
    for report in (first, second):
        report.pop("timings")
    assert first == second


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shipped model on the public test split with the real encoder (minutes)."""
    data_dir = Path(os.environ.get("TIER_ROUTER_DATA", "../shared/data"))
    model = Path(os.environ.get("TIER_ROUTER_MODEL", "models/default"))
    if not (data_dir.is_dir() and (model / "metadata.json").is_file()):
        pytest.skip("needs the public data (TIER_ROUTER_DATA) and a model (TIER_ROUTER_MODEL)")
    return evaluate.evaluate(
        settings=load_settings(), model_dir=model, data_dir=data_dir,
        out=tmp_path_factory.mktemp("real") / "out", cache_dir=Path(".cache/embeddings"),
        strict=True, bootstrap=50,
    )


@pytest.mark.slow
def test_real_model_ranks_better_than_chance_next_to_medium(real_report: dict) -> None:
    pairs = real_report["in_distribution"]["all"]["pairs"]
    assert pairs["small/medium"]["methods"]["router"]["apgr"] > 0.5
    assert pairs["medium/large"]["methods"]["router"]["apgr"] > 0.5


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "the shipped model (default-tqr-guarded-seed0) ranks the small/large pair below chance in "
    "distribution (APGR 0.481 in its report): the open routing-quality problem; strict, so "
    "the day a model beats 0.5 here this fails and the xfail goes"))
def test_real_model_ranks_small_against_large_better_than_chance(real_report: dict) -> None:
    pairs = real_report["in_distribution"]["all"]["pairs"]
    assert pairs["small/large"]["methods"]["router"]["apgr"] > 0.5
