"""Budget periods, spend accounting across a period change, and reconfiguration on reload."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.config import BudgetConfig
from router.errors import BudgetExhausted
from router.guards.budgets import BudgetTracker, iso, period_bounds


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("period", "start", "end"), [
    ("hour", "2026-03-04T10:00:00", "2026-03-04T11:00:00"),
    ("day", "2026-03-04T00:00:00", "2026-03-05T00:00:00"),
    ("week", "2026-03-02T00:00:00", "2026-03-09T00:00:00"),  # Monday to Monday
    ("month", "2026-03-01T00:00:00", "2026-04-01T00:00:00"),
])
def test_period_bounds(period: str, start: str, end: str) -> None:
    assert period_bounds(period, at("2026-03-04T10:30:00")) == (at(start), at(end))


def test_december_rolls_into_january() -> None:
    assert period_bounds("month", at("2026-12-31T23:59:00"))[1] == at("2027-01-01T00:00:00")
    assert iso(at("2027-01-01T00:00:00")) == "2027-01-01T00:00:00Z"


def test_spend_low_spent_and_reset_at_the_next_period() -> None:
    now = [at("2026-03-04T10:00:00")]
    budget = BudgetConfig(name="b", role="planner", limit_usd=10, low_fraction=0.5)
    tracker = BudgetTracker([budget], clock=lambda: now[0])
    tracker.add("planner", 4.0)
    tracker.add("someone-else", 100.0)
    assert tracker.low("planner") is None
    tracker.add("planner", 2.0)
    assert tracker.low("planner") is not None
    tracker.add("planner", 4.0)
    with pytest.raises(BudgetExhausted) as err:
        tracker.check("planner")
    assert err.value.name == "b" and err.value.resets_at == "2026-03-05T00:00:00Z"
    tracker.check("someone-else")  # no budget: never refused
    now[0] = at("2026-03-05T00:00:01")
    tracker.check("planner")  # a new day
    assert tracker.states("planner")[0].spent_usd == 0.0


def test_load_from_the_store_and_keep_spend_across_reconfigure() -> None:
    budget = BudgetConfig(name="b", role="planner", limit_usd=10, period="month")
    tracker = BudgetTracker([budget])
    seen = []
    tracker.load(lambda b, since: seen.append((b, since)) or 7.5)
    assert seen[0][0] == budget and tracker.states("planner")[0].spent_usd == 7.5
    tracker.configure([budget.model_copy(update={"limit_usd": 5})])
    with pytest.raises(BudgetExhausted):
        tracker.check("planner")
    tracker.configure([budget.model_copy(update={"period": "day"})])  # a new period: fresh
    assert tracker.states("planner")[0].spent_usd == 0.0


def test_a_key_budget_counts_every_role_of_that_key_and_nothing_else() -> None:
    by_key = BudgetConfig(name="team-a", api_key="team-a", limit_usd=1.0, low_fraction=0.5)
    by_role = BudgetConfig(name="planner", role="planner", limit_usd=100.0)
    tracker = BudgetTracker([by_key, by_role])
    tracker.add("planner", 0.4, api_key="team-a")
    tracker.add("critic", 0.2, api_key="team-a")
    tracker.add("planner", 5.0, api_key="team-b")  # another key: the role budget only
    tracker.add(None, 0.3, api_key=None)  # unattributed: no budget
    assert [s.spent_usd for s in tracker.states(None, "team-a")] == pytest.approx([0.6])
    assert [s.spent_usd for s in tracker.states("planner", None)] == pytest.approx([5.4])
    low = tracker.low("critic", "team-a")
    assert low is not None and low.budget.name == "team-a"
    tracker.add("critic", 0.5, api_key="team-a")
    with pytest.raises(BudgetExhausted) as err:
        tracker.check("critic", "team-a")
    assert err.value.name == "team-a"
    tracker.check("critic", "team-b")  # the same role under another key is not refused


@pytest.mark.parametrize("subject", [{}, {"role": "planner", "api_key": "team-a"}])
def test_a_budget_needs_exactly_one_subject(subject: dict) -> None:
    with pytest.raises(ValueError, match="budget 'b' needs exactly one of 'role' or 'api_key'"):
        BudgetConfig(name="b", limit_usd=1.0, **subject)
