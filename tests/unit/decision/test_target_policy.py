"""The current map deciding a logged call again: the same category lookup, rules and split
as the service. Synthetic evidence (made-up outcome counts, not measured data)."""

from __future__ import annotations

import math

import pytest

from router.config import LearningConfig, Pin, TierConfig
from router.decision.categories import Signals
from router.decision.choice import TierTable
from router.decision.map_fit import fit_map
from router.decision.target_policy import LoggedCall, target_choice
from router.errors import RequestLimitError
from tests.unit.decision.test_learned_map import sums

TIERS = [
    TierConfig(name="medium", models=["m1"], input_price_per_m=1.0, output_price_per_m=4.0,
               context_window=32_000),
    TierConfig(name="large", models=["l1"], input_price_per_m=10.0, output_price_per_m=30.0,
               context_window=200_000),
]
TABLE = TierTable(TIERS)
CONFIG = LearningConfig(min_outcomes=30, cluster_bits=0)


def learned():  # noqa: ANN201 - a LearnedMap
    """task easy: medium as good as large (decides medium); task close: medium a little below
    (the allowance splits); the key's root: medium far below (large, bar a small share)."""
    return fit_map({
        ("team", ""): sums({"medium": (100, 0.3), "large": (800, 0.9)}),
        ("team", "task:easy"): sums({"medium": (400, 0.9), "large": (400, 0.9)}),
        ("team", "task:close"): sums({"medium": (300, 0.85), "large": (300, 0.9)}),
    }, ("medium", "large"), CONFIG)


def call(task: str | None, **kw: object) -> LoggedCall:
    return LoggedCall(**{"signals": Signals("team", None, task, None), "cluster": None,
                         "scores": (0.7, 0.8), "tokens_in": 500, "tokens_out": 100, **kw})


def test_the_map_decides_a_logged_call_by_its_category_as_the_service_would() -> None:
    easy = target_choice(learned(), TABLE, call("easy"), 0.95)
    assert easy.probabilities == (1.0, 0.0) and easy.category == "team/task:easy"
    assert easy.quality[0] == pytest.approx(0.9, abs=0.02)
    assert easy.costs == (pytest.approx(500e-6 + 400e-6), pytest.approx(5000e-6 + 3000e-6))
    root = target_choice(learned(), TABLE, call(None), 0.95, split=False)
    assert root.probabilities == (0.0, 1.0) and root.category == "team"
    cold = target_choice(learned(), TABLE, call(None, signals=Signals("other")), 0.95)
    assert cold.probabilities == (0.0, 1.0) and cold.category is None


def test_the_allowance_splits_a_category_into_probabilities_unless_asked_for_the_base() -> None:
    m = learned()
    split = target_choice(m, TABLE, call("close"), 0.95)
    verdict = m.assess(Signals("team", None, "close"), None, [0.7, 0.8], math.nan, 0.95)
    assert verdict.split is not None
    share = verdict.split[2]
    assert 0 < share < 1 and split.probabilities == (pytest.approx(share),
                                                     pytest.approx(1 - share))
    assert target_choice(m, TABLE, call("close"), 0.95, split=False).probabilities == (0.0, 1.0)


def test_rules_and_the_callers_ceiling_apply_as_they_do_online() -> None:
    pinned = TierTable(TIERS, pins=(Pin(task="easy", tier="large"),))
    assert target_choice(learned(), pinned, call("easy"), 0.95).probabilities == (0.0, 1.0)
    long = call("easy", tokens_in=40_000)  # medium holds 32,000 tokens
    assert target_choice(learned(), TABLE, long, 0.95).probabilities == (0.0, 1.0)
    ceiling = call(None, ceiling_tier="medium")
    assert target_choice(learned(), TABLE, ceiling, 0.95).probabilities == (1.0, 0.0)
    with pytest.raises(RequestLimitError):
        target_choice(learned(), TABLE, call(None, ceiling_tier="medium", tokens_in=40_000),
                      0.95)
