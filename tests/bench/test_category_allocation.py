"""The allocation study's two rules on made-up category means (synthetic, worked by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import bench_module

allocation = bench_module("category_allocation")

# two categories, half the calls each: 'a' loses 0.1 of 1.0 on the cheap tier, 'b' 0.5 of 1.0
WEIGHTS, WEAK, STRONG = np.array([0.5, 0.5]), np.array([0.9, 0.5]), np.array([1.0, 1.0])


def test_per_category_each_category_keeps_95_percent_of_its_own_quality() -> None:
    # 'a': 0.05 / 0.1 = half its calls; 'b': 0.05 / 0.5 = a tenth
    assert allocation.per_category_share(WEIGHTS, WEAK, STRONG) == pytest.approx(0.30)


def test_pooled_spends_the_traffics_5_percent_on_the_smallest_gap_first() -> None:
    # budget 0.05 of overall quality 1.0; all of 'a' costs 0.5 * 0.1 = 0.05: exactly spent
    assert allocation.pooled_share(WEIGHTS, WEAK, STRONG) == pytest.approx(0.50)


def test_a_category_the_cheap_tier_answers_as_well_goes_cheap_under_both_rules() -> None:
    weak = np.array([1.0, 0.5])
    # per category: all of 'a', a tenth of 'b'
    assert allocation.per_category_share(WEIGHTS, weak, STRONG) == pytest.approx(0.55)
    # pooled: 'a' costs nothing, so the whole 0.05 goes to 'b': 0.05 / (0.5 * 0.5) of it
    assert allocation.pooled_share(WEIGHTS, weak, STRONG) == pytest.approx(0.60)
