"""The run state (add, correct, get, expire), run caps and who may post a decision's outcome."""

from __future__ import annotations

import pytest

from router.config import RunsConfig
from router.errors import Forbidden, RunCeilingReached
from router.guards.auth import ANONYMOUS, Principal
from router.guards.run_spend import LocalRunSpend, check_owner, check_run, run_cap, run_key
from router.schemas import RouteRequest


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_run_adds_its_estimates_and_takes_feedback_corrections() -> None:
    clock = Clock()
    runs = LocalRunSpend(expire_after_s=60, clock=clock)
    run = run_key("team-a", "r1")
    assert runs.get(run) is None
    first = runs.add(run, 0.01, "small", "gpt-4.1-nano")
    assert (first.spend_usd, first.calls, first.model) == (0.01, 1, "gpt-4.1-nano")
    clock.now += 5
    second = runs.add(run, 0.02, "large", "gpt-4.1")
    assert second.spend_usd == pytest.approx(0.03) and second.calls == 2
    assert (second.tier, second.model, second.started_at, second.last_call_at) == (
        "large", "gpt-4.1", 1000.0, 1005.0)
    runs.correct(run, 0.05 - 0.02)  # the second call really cost 0.05
    assert runs.get(run).spend_usd == pytest.approx(0.06)  # type: ignore[union-attr]
    runs.correct(run, -1.0)
    assert runs.get(run).spend_usd == 0.0  # type: ignore[union-attr]  # never negative
    runs.correct(run_key("team-a", "unknown"), 1.0)  # a gone run: nothing to correct
    assert runs.get(run_key("team-a", "unknown")) is None


def test_two_keys_with_one_run_id_are_two_runs() -> None:
    runs = LocalRunSpend(expire_after_s=60, clock=Clock())
    runs.add(run_key("a", "r1"), 1.0, "small", "m")
    runs.add(run_key("b", "r1"), 2.0, "small", "m")
    runs.add(run_key(None, "r1"), 4.0, "small", "m")
    assert [runs.get(run_key(k, "r1")).spend_usd for k in ("a", "b", None)] == [  # type: ignore
        1.0, 2.0, 4.0]


def test_an_idle_run_expires_and_a_later_call_starts_afresh() -> None:
    clock = Clock()
    runs = LocalRunSpend(expire_after_s=60, clock=clock)
    runs.add(run_key("a", "old"), 1.0, "small", "m")
    clock.now += 30
    runs.add(run_key("a", "young"), 1.0, "small", "m")
    clock.now += 31  # old: idle 61 s; young: 31 s
    assert runs.get(run_key("a", "old")) is None  # a read already ignores it
    assert runs.get(run_key("a", "young")) is not None
    assert len(runs) == 2 and runs.expire() == 1 and len(runs) == 1
    again = runs.add(run_key("a", "old"), 0.5, "medium", "m2")
    assert (again.spend_usd, again.calls, again.started_at) == (0.5, 1, clock.now)


def test_the_state_is_bounded_and_the_longest_idle_run_goes_first() -> None:
    clock = Clock()
    runs = LocalRunSpend(expire_after_s=3600, clock=clock, max_runs=3)
    for i in range(3):
        clock.now += 1
        runs.add(run_key("a", f"r{i}"), 1.0, "small", "m")
    runs.add(run_key("a", "r0"), 1.0, "small", "m")  # r0 is the most recent again
    runs.add(run_key("a", "r3"), 1.0, "small", "m")
    assert len(runs) == 3 and runs.get(run_key("a", "r1")) is None
    assert runs.get(run_key("a", "r0")).calls == 2  # type: ignore[union-attr]


def test_load_puts_back_the_stores_runs_without_overwriting_its_own() -> None:
    clock = Clock()
    runs = LocalRunSpend(expire_after_s=60, clock=clock)
    runs.add(run_key("a", "mine"), 0.1, "small", "m")
    view = {"spend_usd": 9.0, "calls": 3, "tier": "large", "model": "gpt-4.1",
            "started_at": clock.now - 100, "last_call_at": clock.now - 10}
    stale = {**view, "last_call_at": clock.now - 61}
    assert runs.load({run_key("a", "mine"): view, run_key("a", "back"): view,
                      run_key("a", "stale"): stale}) == 2
    assert runs.get(run_key("a", "mine")).spend_usd == 0.1  # type: ignore[union-attr]
    assert runs.get(run_key("a", "back")).model == "gpt-4.1"  # type: ignore[union-attr]
    assert runs.get(run_key("a", "stale")) is None


def request(**fields: object) -> RouteRequest:
    return RouteRequest(prompt="hi", run_id="r1", **fields)  # type: ignore[arg-type]


def test_the_tightest_cap_holds_and_the_request_can_only_tighten() -> None:
    config = RunsConfig(max_cost_usd=1.0, by_role={"planner": 0.5}, by_key={"team-a": 0.2})
    assert run_cap(request(), config).usd == 1.0  # type: ignore[union-attr]
    assert run_cap(request(role="planner"), config).usd == 0.5  # type: ignore[union-attr]
    keyed = request(role="planner").attribute_to("team-a")
    assert run_cap(keyed, config).source == "runs.by_key.team-a"  # type: ignore[union-attr]
    tight = request(role="planner", max_run_cost_usd=0.1)
    assert run_cap(tight, config).source == "the request's max_run_cost_usd"  # type: ignore
    loose = request(role="planner", max_run_cost_usd=5.0)
    assert run_cap(loose, config).usd == 0.5  # type: ignore[union-attr]
    assert run_cap(request(), RunsConfig()) is None
    assert run_cap(request(max_run_cost_usd=0.3), RunsConfig()).usd == 0.3  # type: ignore


def test_a_run_at_its_cap_is_refused_naming_run_spend_and_cap() -> None:
    runs = LocalRunSpend(expire_after_s=60, clock=Clock())
    config = RunsConfig(by_role={"planner": 0.05})
    call = request(role="planner")
    check_run(runs, call, config)  # a run never seen: nothing spent
    runs.add(run_key(None, "r1"), 0.049, "small", "m")
    check_run(runs, call, config)
    runs.add(run_key(None, "r1"), 0.001, "small", "m")
    with pytest.raises(RunCeilingReached) as caught:
        check_run(runs, call, config)
    assert (caught.value.run_id, caught.value.spent_usd, caught.value.cap_usd) == (
        "r1", 0.05, 0.05)
    assert "run 'r1'" in str(caught.value) and "runs.by_role.planner" in str(caught.value)
    check_run(runs, request(role="other"), config)  # another role: no cap
    check_run(runs, RouteRequest(prompt="hi", role="planner"), config)  # no run


def test_an_outcome_belongs_to_the_key_that_made_the_decision() -> None:
    decision = {"decision_id": "d1", "api_key": "team-a"}
    check_owner(decision, Principal("team-a", frozenset({"feedback"})))
    check_owner(decision, Principal("ops", frozenset({"admin"})))
    check_owner(decision, ANONYMOUS)  # an open service checks nothing
    with pytest.raises(Forbidden, match="'d1' was made with another API key.*not 'team-b'"):
        check_owner(decision, Principal("team-b", frozenset({"feedback"})))
    with pytest.raises(Forbidden, match="made without an API key"):
        check_owner({"decision_id": "d2", "api_key": None},
                    Principal("team-b", frozenset({"feedback"})))
