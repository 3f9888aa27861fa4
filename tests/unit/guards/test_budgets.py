"""Budget periods, spend accounting across a period change, reconfiguration on reload, and budgets
over groups (teams of roles or keys, the whole fleet) where the tightest decides."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.config import BudgetConfig
from router.errors import BudgetExhausted
from router.guards.budgets import BudgetTracker, iso, period_bounds, spent_in_store


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


def test_a_budget_counts_roles_or_keys_not_both() -> None:
    with pytest.raises(ValueError, match="budget 'b' names roles and API keys"):
        BudgetConfig(name="b", limit_usd=1.0, role="planner", api_key="team-a")
    with pytest.raises(ValueError, match="budget 'b' names roles and API keys"):
        BudgetConfig(name="b", limit_usd=1.0, roles=["planner"], api_keys=["team-a"])


def test_a_team_of_roles_a_team_of_keys_and_the_fleet() -> None:
    team = BudgetConfig(name="agents", roles=["planner", "critic"], role="coder", limit_usd=10)
    keys = BudgetConfig(name="team-a", api_keys=["a1", "a2"], limit_usd=10)
    fleet = BudgetConfig(name="fleet", limit_usd=100)
    assert team.subject == "roles coder, critic, planner" and fleet.subject == "the whole fleet"
    tracker = BudgetTracker([team, keys, fleet])
    tracker.add("planner", 1.0, api_key="a1")
    tracker.add("coder", 2.0, api_key="b1")
    tracker.add("writer", 4.0, api_key="a2")
    tracker.add(None, 8.0)  # unattributed: only the fleet counts it
    spent = {s.budget.name: s.spent_usd for s in tracker.states("critic", "a1")}
    assert spent == pytest.approx({"agents": 3.0, "team-a": 5.0, "fleet": 15.0})
    assert [s.budget.name for s in tracker.states("writer", "b1")] == ["fleet"]


def test_every_covering_budget_is_checked_and_the_tightest_decides() -> None:
    role = BudgetConfig(name="planner", role="planner", limit_usd=10, low_fraction=0.5,
                        low_quality_target=0.7)
    team = BudgetConfig(name="team-a", api_keys=["a1"], limit_usd=4, low_fraction=0.5,
                        low_quality_target=0.6)
    fleet = BudgetConfig(name="fleet", limit_usd=20, low_fraction=0.1, low_quality_target=0.3)
    tracker = BudgetTracker([role, team, fleet])
    tracker.add("planner", 2.5, api_key="a1")  # planner 25% (ok), team-a 62% (low), fleet 12%
    low = tracker.low("planner", "a1")
    assert low is not None and low.budget.name == "team-a"  # the least left, not the lowest knob
    tracker.add("planner", 1.5, api_key="a2")  # planner 40%, team-a 62%, fleet 20%
    tracker.add("planner", 2.0, api_key="a1")  # planner 60%, team-a 112% (spent), fleet 30%
    with pytest.raises(BudgetExhausted) as err:
        tracker.check("planner", "a1")
    assert err.value.name == "team-a" and "budget 'team-a' is spent" in str(err.value)
    tracker.check("planner", "a2")  # another key of the same role: only planner and fleet
    tracker.add("writer", 12.0, api_key="b")  # fleet 18 of 20: team-a (4.5 of 4) still decides
    with pytest.raises(BudgetExhausted) as err:
        tracker.check("planner", "a1")
    assert err.value.name == "team-a"
    tracker.add("writer", 12.0, api_key="b")  # fleet 30 of 20: now the most overspent
    with pytest.raises(BudgetExhausted) as err:
        tracker.check("planner", "a1")
    assert err.value.name == "fleet"
    with pytest.raises(BudgetExhausted, match="budget 'fleet' is spent"):
        tracker.check(None, None)  # the fleet covers unattributed calls as well


def test_store_spend_of_a_group_budget() -> None:
    rows = {"role": [{"key": "planner", "cost_usd": 1.0}, {"key": "critic", "cost_usd": 2.0},
                     {"key": None, "cost_usd": 4.0}],
            "api_key": [{"key": "a1", "cost_usd": 3.0}, {"key": None, "cost_usd": 4.0}]}
    asked = []

    def spend(by: str, since: float, keyed_traces: bool) -> list[dict]:
        asked.append((by, since, keyed_traces))
        return rows[by]

    team = BudgetConfig(name="t", roles=["planner", "critic"], limit_usd=10)
    keys = BudgetConfig(name="k", api_keys=["a1", "a9"], limit_usd=10)
    fleet = BudgetConfig(name="f", limit_usd=10)
    own = BudgetConfig(name="o", api_key="a1", limit_usd=10)
    assert [spent_in_store(spend, b, 5.0) for b in (team, keys, fleet, own)] == [
        3.0, 3.0, 7.0, 3.0]
    # a key's traces without a decision count toward its budget alone, never a shared one
    assert asked == [("role", 5.0, False), ("api_key", 5.0, False), ("role", 5.0, False),
                     ("api_key", 5.0, True)]
