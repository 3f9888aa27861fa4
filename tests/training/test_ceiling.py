"""The outcome-informed ceiling on synthetic outcomes (made up for the test, not real labels)."""

from __future__ import annotations

import pytest

from router.config import load_settings
from tests.training.synthetic_eval import synthetic_outcomes
from training.card import _ceiling
from training.ceiling import ceiling_report, ceiling_section, outcome_matrix, tier_model


def test_other_models_outcomes_route_far_better_than_random() -> None:
    quality, meta = outcome_matrix(synthetic_outcomes())
    rows = ceiling_report(quality, meta, "weak", "strong", n_boot=20)
    pooled = rows[0]
    assert pooled["scope"] == "pooled" and pooled["prompts"] == 100
    assert pooled["others"] == 3
    # A perfect router reaches about 0.68 here (the weak model fails 64% of prompts).
    assert pooled["outcomes of the other models (fitted)"] > 0.58
    assert pooled["outcomes of the other models (mean)"] > pooled["sub-benchmark only"] + 0.05
    low, high = pooled["outcomes of the other models (mean) CI"]
    assert low <= pooled["outcomes of the other models (mean)"] <= high
    assert [r["scope"] for r in rows[1:]] == ["easy", "hard"]


def test_unknown_model_is_named() -> None:
    quality, meta = outcome_matrix(synthetic_outcomes(40))
    with pytest.raises(ValueError, match="'gpt-9' has no outcomes"):
        ceiling_report(quality, meta, "weak", "gpt-9")


def test_a_single_split_is_refused() -> None:
    frame = synthetic_outcomes(40).assign(split="train")
    quality, meta = outcome_matrix(frame)
    with pytest.raises(ValueError, match="both a train and a test split"):
        ceiling_report(quality, meta, "weak", "strong")


def test_tier_model_is_the_first_listed_training_model_present() -> None:
    settings = load_settings(None)
    listed = settings.tier("large").training_models
    assert tier_model(settings, "large", [listed[1], listed[0]]) == listed[0]
    with pytest.raises(ValueError, match="'large' tier has no training model"):
        tier_model(settings, "large", ["nobody"])


def test_no_routerbench_outcomes_means_no_ceiling() -> None:
    others = synthetic_outcomes(40).assign(dataset="llmrouter")
    assert ceiling_section(others, load_settings(None)) is None


def test_card_puts_the_router_beside_the_ceiling() -> None:
    quality, meta = outcome_matrix(synthetic_outcomes(200))
    rows = ceiling_report(quality, meta, "weak", "strong", n_boot=10)
    report = {
        "ceiling": {"source": "synth", "pairs": {"medium/large": {
            "weak_model": "weak", "strong_model": "strong", "rows": rows}}},
        "in_distribution": {"synth": {"pairs": {"medium/large": {"methods": {"router": {
            "apgr": 0.5432, "apgr_ci": [0.5, 0.6]}}}}}},
    }
    text = _ceiling(report)
    assert "## How far prompt-only routing can go" in text
    pooled = next(line for line in text.splitlines() if "| synth |" in line)
    assert "0.543 [0.50, 0.60]" in pooled
    assert f"{rows[0]['outcomes of the other models (fitted)']:.3f}" in pooled
    assert _ceiling({"in_distribution": {}}) == ""
