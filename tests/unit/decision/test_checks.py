"""The learned map's check evidence: posteriors per (category, tier), which category decides,
borrowing and sharing as the map does. Every sum here is SYNTHETIC."""

from __future__ import annotations

from router.config import LearningConfig
from router.decision.categories import Signals
from router.decision.checks import empty_checks, fit_checks
from tests.unit.decision.test_escalation import check_sums

TIERS = ("small", "medium", "large")
CONFIG = LearningConfig(min_outcomes=30, cluster_bits=0)


def test_no_evidence_no_category() -> None:
    assert empty_checks(TIERS, CONFIG).find(Signals("k", task="x"), None) == (None, None)
    fitted = fit_checks({("k", ""): check_sums([(10, 5), (0, 0), (0, 0)])}, TIERS, CONFIG)
    assert fitted.find(Signals("k", task="x"), None) == (None, None)  # 10 < min_outcomes


def test_pass_rate_and_passed_quality_with_bounds() -> None:
    fitted = fit_checks({("k", ""): check_sums([(200, 60), (200, 150), (200, 190)], 0.9)},
                        TIERS, CONFIG)
    entry, name = fitted.find(Signals("k"), None)
    assert entry is not None and name == "k" and entry.runs == 600
    assert abs(entry.pass_rate[0] - 0.3) < 0.01 and entry.pass_upper[0] > entry.pass_rate[0]
    assert abs(entry.passed_quality[1] - 0.9) < 0.01
    assert entry.passed_lower[1] < entry.passed_quality[1]


def test_a_sparse_fine_category_borrows_from_its_parent() -> None:
    """The root's small passes 80% of 400 checks; task x has 6 checks of small, all failed:
    task x is not yet the deciding category, and its own estimate sits between the two."""
    root = check_sums([(400, 320), (0, 0), (0, 0)])
    fine = check_sums([(6, 0), (0, 0), (0, 0)])
    fitted = fit_checks({("k", ""): root + fine, ("k", "task:x"): fine}, TIERS, CONFIG)
    entry, name = fitted.find(Signals("k", task="x"), None)
    assert name == "k"  # the parent decides
    own = fitted.entries[("k", "task:x")]
    # pulled toward the parent's 0.8 (worth prior_strength checks), not 0
    assert 0.1 < own.pass_rate[0] < 0.75
    many = check_sums([(60, 0), (0, 0), (0, 0)])
    fitted = fit_checks({("k", ""): root + many, ("k", "task:x"): many}, TIERS, CONFIG)
    entry, name = fitted.find(Signals("k", task="x"), None)
    assert name == "k/task:x" and entry is not None and entry.pass_rate[0] < 0.15


def test_one_key_cannot_carry_a_shared_category_alone() -> None:
    shared = LearningConfig(min_outcomes=30, cluster_bits=0, share_across_keys=True)
    a = check_sums([(100, 80), (0, 0), (0, 0)])
    alone = fit_checks({("a", ""): a, ("a", "task:x"): a}, TIERS, shared)
    assert alone.find(Signals("b", task="x"), None) == (None, None)
    both = fit_checks({("a", ""): a, ("a", "task:x"): a, ("c", ""): a, ("c", "task:x"): a},
                      TIERS, shared)
    entry, name = both.find(Signals("b", task="x"), None)
    assert name == "*/task:x" and entry is not None
    assert both.find(Signals("a", task="x"), None)[1] == "a/task:x"  # its own first


def test_beyond_max_categories_the_busiest_stay_and_a_dropped_one_uses_its_parent() -> None:
    bounded = LearningConfig(min_outcomes=30, cluster_bits=0, max_categories=1)
    busy, quiet = check_sums([(90, 80), (0, 0), (0, 0)]), check_sums([(40, 4), (0, 0), (0, 0)])
    fitted = fit_checks({("k", ""): busy + quiet, ("k", "task:busy"): busy,
                         ("k", "task:quiet"): quiet}, TIERS, bounded)
    assert set(fitted.entries) == {("k", ""), ("k", "task:busy")}
    assert fitted.find(Signals("k", task="quiet"), None)[1] == "k"
