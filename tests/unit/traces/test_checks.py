"""What one checked answer adds to the check evidence: a row per category the call fell in,
on its tier's check marker; nothing for a call nobody followed. Synthetic decision rows."""

from __future__ import annotations

from router.config import LearningConfig
from router.decision.checks import LABELLED, PASSED, PASSED_QUALITY, RUNS
from router.decision.learned_map import TOTAL
from router.traces.checks import check_increments, label_increments

TIERS = ("small", "medium", "large")
CONFIG = LearningConfig(cluster_bits=0)
ROW = {"decision_id": "d1", "tier": "small", "api_key": "team", "role": "coder",
       "task": "code", "reason": "classifier"}


def test_a_check_adds_a_row_per_category_on_its_tiers_marker() -> None:
    rows = check_increments(ROW, True, 0.8, TIERS, CONFIG, None)
    assert [(ns, path, tier) for ns, path, tier, _ in rows] == [
        ("team", "role:coder", "check:small"), ("team", "role:coder/task:code", "check:small"),
        ("team", "", "check:small")]
    values = rows[0][3]
    assert (values[RUNS], values[TOTAL], values[PASSED]) == (1.0, 1.0, 1.0)
    assert (values[LABELLED], values[PASSED_QUALITY]) == (1.0, 0.8)
    failed = check_increments(ROW, False, 0.8, TIERS, CONFIG, None)[0][3]
    assert (failed[RUNS], failed[PASSED], failed[LABELLED]) == (1.0, 0.0, 0.0)  # no pass


def test_a_later_label_adds_only_the_passed_answers_quality() -> None:
    values = label_increments(ROW, 0.6, TIERS, CONFIG, None)[0][3]
    assert (values[RUNS], values[PASSED], values[LABELLED], values[PASSED_QUALITY]) == (
        0.0, 0.0, 1.0, 0.6)


def test_calls_nobody_followed_or_on_unknown_tiers_add_nothing() -> None:
    assert check_increments({**ROW, "shadow": 1}, True, None, TIERS, CONFIG, None) == []
    assert check_increments({**ROW, "reason": "degraded"}, True, None, TIERS, CONFIG, None) == []
    assert check_increments({**ROW, "tier": "retired"}, True, None, TIERS, CONFIG, None) == []
