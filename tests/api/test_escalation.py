"""POST /route with escalate_from through the real app: the stronger tier, the loop guard, the
first decision's limits, budgets and run caps, ownership, and a restart in between."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.config import AuthConfig, BudgetConfig, Settings
from router.guards.auth import hash_key
from router.traces.store import TraceStore
from tests.api.test_feedback import client_for

CHECK = {"reason": "tests_failed", "logprob_mean": -0.8, "detail": "2 of 5 tests failed"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as c:
        yield c


def route(client: TestClient, status: int = 200, headers: dict[str, str] | None = None,
          **body: Any) -> dict[str, Any]:
    r = client.post("/route", json={"prompt": "write a function that adds", **body},
                    headers=headers)
    assert r.status_code == status, r.text
    return r.json()


def escalate(client: TestClient, decision_id: str, status: int = 200,
             headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    return route(client, status, headers, escalate_from=decision_id, escalation=CHECK, **body)


def test_an_escalation_goes_one_tier_up_in_the_same_run_and_records_the_failure(
    client: TestClient, settings: Settings,
) -> None:
    first = route(client, tier="small", run_id="run-1", role="coder")
    second = escalate(client, first["decision_id"])
    assert second["tier"] == "medium" and second["reason"] == "escalation"
    assert second["attempt"] == 2 and second["escalated_from"] == first["decision_id"]
    assert first["decision_id"] in second["detail"]
    # same run: both calls count in its spend
    total = first["estimated_cost_usd"] + second["estimated_cost_usd"]
    assert second["run_spend_usd"] == pytest.approx(total)
    store = TraceStore(settings.store).open()
    outcome = store.query("SELECT quality, tier FROM outcomes WHERE decision_id = ?",
                          (first["decision_id"],))
    assert outcome == [{"quality": 0.0, "tier": "small"}]  # the failure of its tier
    row = store.query("SELECT * FROM escalations")[0]
    assert (row["to_decision_id"], row["reason"], row["attempt"]) == (
        second["decision_id"], "tests_failed", 2)
    assert (row["from_tier"], row["to_tier"], row["logprob_mean"]) == ("small", "medium", -0.8)
    client.get("/spend")  # flush
    roles = store.query("SELECT role, run_id FROM decisions WHERE decision_id = ?",
                        (second["decision_id"],))
    assert roles == [{"role": "coder", "run_id": "run-1"}]


def test_a_decision_is_escalated_from_once_and_the_chain_ends_at_the_strongest(
    client: TestClient,
) -> None:
    first = route(client, tier="small")
    second = escalate(client, first["decision_id"])
    again = escalate(client, first["decision_id"], status=409)
    assert again["error"] == "escalation refused"
    assert again["escalated_to"] == second["decision_id"]
    assert second["decision_id"] in again["detail"]
    learned = client.get("/admin/learning").json()
    assert learned["revision"] == 1 and learned["tiers"]["small"]["outcomes"] == 1
    assert learned["tiers"]["small"]["realised"] == 0.0  # taught once, as a failure
    third = escalate(client, second["decision_id"])
    assert (third["tier"], third["attempt"]) == ("large", 3)
    top = escalate(client, third["decision_id"], status=409)
    assert top["limit"] == "large" and "strongest tier" in top["detail"]


def test_escalation_is_remembered_across_a_restart(settings: Settings) -> None:
    with client_for(settings) as c:
        first = route(c, tier="small")
        second = escalate(c, first["decision_id"])
    with client_for(settings) as c:
        again = escalate(c, first["decision_id"], status=409)
        assert again["escalated_to"] == second["decision_id"]
        assert escalate(c, second["decision_id"])["attempt"] == 3


def test_the_first_decisions_ceiling_and_max_cost_hold(client: TestClient) -> None:
    capped = route(client, tier="small", model="gpt-4.1-mini")  # ceiling: medium
    up = escalate(client, capped["decision_id"])
    assert up["tier"] == "medium"
    refused = escalate(client, up["decision_id"], status=409)
    assert refused["limit"] == "gpt-4.1-mini" and "ceiling" in refused["detail"]
    small_only = route(client, tier="small", max_cost_usd=0.0002)
    refused = escalate(client, small_only["decision_id"], status=409)
    assert refused["limit"] == 0.0002 and "max_cost_usd" in refused["detail"]
    # the escalation's own cap may only tighten the first one's
    loose = route(client, tier="small", max_cost_usd=0.0002)
    assert escalate(client, loose["decision_id"], status=409, max_cost_usd=5.0)["limit"] == 0.0002


def test_a_spent_budget_or_run_cap_refuses_the_escalation_with_402(settings: Settings) -> None:
    budget = BudgetConfig(name="coders", role="coder", limit_usd=0.0001)
    with client_for(settings.model_copy(update={"budgets": [budget]})) as c:
        first = route(c, tier="small", role="coder")
        spent = escalate(c, first["decision_id"], status=402)
        assert spent["budget"] == "coders"
        # refused, the decision may still be escalated from (nothing was claimed)
        TraceStore(settings.store).open()  # the store is readable meanwhile
    runs = settings.runs.model_copy(update={"max_cost_usd": 0.0001})
    with client_for(settings.model_copy(update={"runs": runs})) as c:
        first = route(c, tier="small", run_id="r")
        capped = escalate(c, first["decision_id"], status=402)
        assert capped["run_id"] == "r" and capped["error"] == "run cap reached"


def test_unknown_and_foreign_decisions_answer_as_feedback_does(settings: Settings) -> None:
    keys = [{"name": n, "sha256": hash_key(f"{n}-key"), "scopes": ["route", "feedback"]}
            for n in ("team-a", "team-b")]
    secured = settings.model_copy(update={"auth": AuthConfig.model_validate({"keys": keys})})
    a, b = ({"Authorization": f"Bearer {n}-key"} for n in ("team-a", "team-b"))
    with client_for(secured) as c:
        theirs = route(c, headers=a, tier="small")
        foreign = escalate(c, theirs["decision_id"], status=403, headers=b)
        assert "another API key" in foreign["detail"]
        unknown = escalate(c, "f" * 32, status=404, headers=a)
        assert unknown["error"] == "unknown decision"
        assert escalate(c, theirs["decision_id"], headers=a)["tier"] == "medium"


def test_bad_escalations_are_422_naming_the_field(client: TestClient) -> None:
    first = route(client, tier="small", run_id="run-1")
    alone = route(client, 422, escalate_from=first["decision_id"])
    assert "escalation" in alone["detail"][0]["message"]
    reason = route(client, 422, escalate_from=first["decision_id"],
                   escalation={"reason": "vibes"})
    assert reason["detail"][0]["field"] == "escalation.reason"
    forced = escalate(client, first["decision_id"], status=422, tier="large")
    assert forced["detail"][0]["field"] == "tier"
    other_run = escalate(client, first["decision_id"], status=422, run_id="run-2")
    assert other_run["detail"][0]["field"] == "run_id"
    batch = client.post("/route/batch", json={"requests": [
        {"prompt": "x", "escalate_from": first["decision_id"], "escalation": CHECK}]})
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["field"] == "requests.0.escalate_from"
    # nothing was lost: the decision can still be escalated from
    assert escalate(client, first["decision_id"])["attempt"] == 2


def test_a_later_feedback_adds_cost_and_tokens_and_its_label_is_ignored(
    client: TestClient, settings: Settings,
) -> None:
    first = route(client, tier="small")
    escalate(client, first["decision_id"])
    r = client.post("/feedback", json={"decision_id": first["decision_id"], "success": True,
                                       "cost_usd": 0.0003, "tokens_in": 20, "tokens_out": 9})
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["status"] == "completed" and receipt["ignored_fields"] == ["success"]
    assert "escalated from" in receipt["detail"]
    store = TraceStore(settings.store).open()
    row = store.query("SELECT quality, cost_usd, tokens_out FROM outcomes")[0]
    assert row == {"quality": 0.0, "cost_usd": 0.0003, "tokens_out": 9}
    plain = route(client, tier="small")
    r = client.post("/feedback", json={"decision_id": plain["decision_id"], "success": True})
    assert r.status_code == 201 and "ignored_fields" not in r.json()


def test_spend_and_the_run_ledger_count_the_wasted_call_and_the_net_saving(
    client: TestClient,
) -> None:
    first = route(client, tier="small", run_id="run-9")
    second = escalate(client, first["decision_id"])
    client.post("/feedback", json={"decision_id": first["decision_id"], "cost_usd": 0.0003,
                                   "tokens_in": 20, "tokens_out": 9})
    plain = route(client, tier="small", run_id="other")
    ledger = client.get("/runs/run-9").json()
    steps = {s["decision_id"]: s for s in ledger["steps"]}
    assert steps[first["decision_id"]]["escalated_to"] == second["decision_id"]
    assert steps[second["decision_id"]]["escalated_from"] == first["decision_id"]
    assert [s["attempt"] for s in ledger["steps"]] == [1, 2]
    report = ledger["escalations"]
    always = (20 * 2.0 + 9 * 8.0) / 1e6  # one chain: the first call's tokens at large's prices
    spent = 0.0003 + second["estimated_cost_usd"]
    assert report["escalations"] == 1 and report["wasted_usd"] == pytest.approx(0.0003)
    assert report["calls"] == 2 and report["spent_usd"] == pytest.approx(spent)
    assert report["always_strongest_usd"] == pytest.approx(always)
    assert report["saved_usd"] == pytest.approx(always - spent)
    whole = client.get("/spend", params={"by": "run_id"}).json()["escalations"]
    plain_always = (plain["estimated_tokens_in"] * 2.0 + 400 * 8.0) / 1e6
    assert whole["escalations"] == 1 and whole["calls"] == 3
    assert whole["always_strongest_usd"] == pytest.approx(always + plain_always)
    assert whole["spent_usd"] == pytest.approx(spent + plain["estimated_cost_usd"])


def test_a_verifiable_call_says_its_plan_and_a_plain_one_does_not(client: TestClient) -> None:
    plain = route(client)
    assert "plan" not in plain
    verifiable = route(client, verifiable=True, tier=None)
    assert verifiable["plan"] in ("direct", "try_cheap_first")
    if verifiable["plan"] == "try_cheap_first":
        assert "verifiable: try" in verifiable["detail"]
        up = escalate(client, verifiable["decision_id"])
        assert up["attempt"] == 2 and "plan" not in up
    forced = route(client, verifiable=True, tier="large")
    assert (forced["tier"], forced["plan"]) == ("large", "direct")
