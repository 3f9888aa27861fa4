"""Outcome-only feedback (what a gateway knows: tokens, cost, latency, error; no invented label)
through the real app: stored once, counted for spend and budgets, never for learning, skipped by
the traces export and by retraining with the reason. Outcomes are synthetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import BudgetConfig, Settings
from router.traces.export import NO_LABEL, export_traces
from tests.api.test_feedback import client_for, route, stored
from training.traffic.retrain import usable_rows


def test_an_outcome_without_a_label_counts_for_spend_but_never_teaches(
    settings: Settings, tmp_path: Path
) -> None:
    budget = BudgetConfig(name="planner-daily", role="planner", limit_usd=1.0)
    with client_for(settings.model_copy(update={"budgets": [budget]})) as c:
        before = route(c, prompt="prove the theorem number 1")
        decision = route(c, role="planner")
        body = {"decision_id": decision["decision_id"], "model_used": "gpt-4.1-nano",
                "cost_usd": 0.25, "tokens_in": 812, "tokens_out": 140, "latency_ms": 930.0,
                "error": "timeout"}
        first = c.post("/feedback", json=body)
        assert first.status_code == 201 and first.json()["status"] == "stored", first.text
        assert c.post("/feedback", json=body).json()["status"] == "duplicate"

        spend = {r["key"]: r for r in c.get("/spend", params={"by": "role"}).json()["rows"]}
        assert spend["planner"]["actual_usd"] == 0.25  # the reported cost, not the estimate
        (state,) = c.app.state.holder.loop.budgets.states("planner")
        assert state.spent_usd == 0.25  # the budget counts it too

        assert c.get("/admin/learning").json()["revision"] == 0
        c.app.state.holder.loop.reload_learning()  # a restart rebuilds from the store: still 0
        assert c.get("/admin/learning").json()["revision"] == 0
        after = route(c, prompt="prove the theorem number 1")
        assert after["scores"] == before["scores"]
        assert after["router_version"] == before["router_version"]

    rows = list(stored(settings).outcome_rows())
    assert [r["quality"] for r in rows] == [None] and rows[0]["error"] == "timeout"
    written, skipped = export_traces(rows, tmp_path / "out.jsonl")
    assert (written, skipped) == (0, {NO_LABEL: 1})
    usable, reasons = usable_rows(rows, "fake", 384)
    assert usable == [] and sum(reasons.values()) == 1


def test_an_outcome_that_says_nothing_is_422_listing_what_it_may_say(settings: Settings) -> None:
    with client_for(settings) as c:
        decision = route(c)
        r = c.post("/feedback", json={"decision_id": decision["decision_id"],
                                      "model_used": "gpt-4.1-nano"})
        assert r.status_code == 422, r.text
        message = r.json()["detail"][0]["message"]
        for name in ("quality", "success", "cost_usd", "tokens_in", "latency_ms", "error"):
            assert name in message
        assert stored(settings).counts()["outcomes"] == 0


def test_the_openapi_body_admits_an_outcome_without_a_label(settings: Settings) -> None:
    with client_for(settings) as c:
        body = c.get("/openapi.json").json()["paths"]["/feedback"]["post"]["requestBody"]
    feedback, trace = body["content"]["application/json"]["schema"]["oneOf"]
    assert {"cost_usd", "error", "quality"} <= {
        next(iter(v["required"])) for v in feedback["anyOf"]}
    assert [v["required"] for v in trace["anyOf"]] == [["quality"], ["success"]]


def test_a_later_report_completes_the_outcome_once_and_never_changes_it(
    settings: Settings,
) -> None:
    budget = BudgetConfig(name="planner-daily", role="planner", limit_usd=10.0)
    with client_for(settings.model_copy(update={"budgets": [budget]})) as c:
        decision = route(c, role="planner")
        did = decision["decision_id"]
        gateway = {"decision_id": did, "model_used": "gpt-4.1-nano", "tokens_in": 800,
                   "tokens_out": 100, "latency_ms": 900.0}
        assert c.post("/feedback", json=gateway).status_code == 201
        (state,) = c.app.state.holder.loop.budgets.states("planner")
        estimated = state.spent_usd
        assert estimated == pytest.approx(settings.tier("small").estimate_cost(800, 100))
        assert c.get("/admin/learning").json()["revision"] == 0

        grader = {"decision_id": did, "quality": 0.8}  # later, from somewhere else
        r = c.post("/feedback", json=grader)
        assert r.status_code == 200 and r.json()["status"] == "completed", r.text
        assert c.get("/admin/learning").json()["revision"] == 1  # the label teaches, once
        assert c.post("/feedback", json=grader).json()["status"] == "duplicate"
        assert c.post("/feedback", json=gateway).json()["status"] == "duplicate"
        assert c.get("/admin/learning").json()["revision"] == 1

        billed = c.post("/feedback", json={"decision_id": did, "cost_usd": 0.5})
        assert billed.json()["status"] == "completed"  # a reported cost over the estimate
        (state,) = c.app.state.holder.loop.budgets.states("planner")
        assert state.spent_usd == pytest.approx(0.5)

        for change, field in (({"quality": 0.2}, "quality"), ({"cost_usd": 0.7}, "cost_usd"),
                              ({"model_used": "gpt-4.1", "success": True}, "model_used"),
                              ({"tokens_out": 101}, "tokens_out")):
            r = c.post("/feedback", json={"decision_id": did, **change})
            assert r.status_code == 409 and field in r.json()["detail"], r.text
        (row,) = list(stored(settings).outcome_rows())
        assert (row["quality"], row["cost_usd"], row["tokens_out"], row["latency_ms"]) == (
            0.8, 0.5, 100, 900.0)
        spend = {r["key"]: r for r in c.get("/spend", params={"by": "role"}).json()["rows"]}
        assert spend["planner"]["actual_usd"] == 0.5 and spend["planner"]["estimated_calls"] == 0


def test_tokens_reported_after_a_label_re_estimate_the_cost(settings: Settings) -> None:
    """A grader's label first (cost estimated from the decision's guess), the gateway's tokens
    later: spend, budgets and the run follow the tokens that were really used."""
    budget = BudgetConfig(name="planner-daily", role="planner", limit_usd=10.0)
    with client_for(settings.model_copy(update={"budgets": [budget]})) as c:
        decision = route(c, role="planner", run_id="r1")
        did = decision["decision_id"]
        assert c.post("/feedback", json={"decision_id": did, "quality": 0.8}).status_code == 201
        r = c.post("/feedback", json={"decision_id": did, "model_used": "gpt-4.1-nano",
                                      "tokens_in": 80_000, "tokens_out": 20_000})
        assert r.json()["status"] == "completed", r.text
        real = settings.tier("small").estimate_cost(80_000, 20_000)
        (state,) = c.app.state.holder.loop.budgets.states("planner")
        assert state.spent_usd == pytest.approx(real)
        spend = {r["key"]: r for r in c.get("/spend", params={"by": "role"}).json()["rows"]}
        assert spend["planner"]["estimated_usd"] == pytest.approx(real)
        again = route(c, role="planner", run_id="r1")
        assert again["run_spend_usd"] == pytest.approx(real + again["estimated_cost_usd"])
