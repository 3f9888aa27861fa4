"""POST /feedback, GET /spend, budgets, exploration and drift gauges through the real app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import AuthConfig, BudgetConfig, Settings, StoreConfig
from router.guards.auth import hash_key
from router.traces.store import TraceStore
from tests.conftest import JSON, LOOPBACK, FakeEmbedder


def client_for(settings: Settings) -> TestClient:
    return TestClient(create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder()),
                      client=LOOPBACK)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as c:
        yield c


def route(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/route", json={"prompt": "say hello", **body})
    assert r.status_code == 200, r.text
    return r.json()


def stored(settings: Settings) -> TraceStore:
    return TraceStore(settings.store).open()


def test_feedback_is_stored_once_and_never_overwritten(client: TestClient) -> None:
    decision = route(client, role="planner")
    body = {"decision_id": decision["decision_id"], "success": True, "model_used": "gpt-4.1-nano",
            "cost_usd": 0.0002, "tokens_in": 10, "tokens_out": 5, "latency_ms": 120.5}
    first = client.post("/feedback", json=body)
    assert first.status_code == 201, first.text
    assert first.json() == {"feedback_id": decision["decision_id"],
                            "decision_id": decision["decision_id"], "status": "stored"}
    again = client.post("/feedback", json=dict(reversed(list(body.items()))))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    other = client.post("/feedback", json={**body, "success": False})
    assert other.status_code == 409 and other.json()["error"] == "feedback conflict"


def test_feedback_right_after_route_finds_the_queued_decision(
    settings: Settings,
) -> None:
    slow = settings.model_copy(update={"store": settings.store.model_copy(
        update={"flush_interval_ms": 5000, "batch_size": 10_000})})
    with client_for(slow) as c:
        decision = route(c)
        r = c.post("/feedback", json={"decision_id": decision["decision_id"], "quality": 0.7})
        assert r.status_code == 201, r.text
        # acknowledged means on disk, decision included, though the writer has not run yet
        assert stored(slow).counts() == {"decisions": 1, "outcomes": 1}


def test_unknown_decision_is_404(client: TestClient) -> None:
    r = client.post("/feedback", json={"decision_id": "f" * 32, "success": True})
    assert r.status_code == 404
    assert r.json()["error"] == "unknown decision" and "f" * 32 in r.json()["detail"]
    trace = {"prompt": "hi", "model": "gpt-4.1", "quality": 1, "decision_id": "nope"}
    assert client.post("/feedback", json=trace).status_code == 404


def test_a_trace_without_a_decision_is_accepted_once(client: TestClient, settings: Settings
                                                     ) -> None:
    trace = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "model": "gpt-4.1",
             "quality": 1.0, "tokens_in": 12, "tokens_out": 3, "role": "solver",
             "task": "plan", "source": "agent-logs", "timestamp": "2026-01-02T03:04:05Z",
             "my_own_field": {"kept": True}}
    r = client.post("/feedback", json=trace)
    assert r.status_code == 201, r.text
    assert r.json()["feedback_id"].startswith("trace:") and r.json()["decision_id"] is None
    assert client.post("/feedback", json=trace).json()["status"] == "duplicate"
    (row,) = list(stored(settings).outcome_rows())
    assert row["tier"] == "large" and row["role"] == "solver" and row["cost_estimated"] == 1
    assert row["cost_usd"] == pytest.approx((12 * 2.0 + 3 * 8.0) / 1e6)


BAD_FEEDBACK = [
    ({"success": True}, "decision_id"),
    ({"decision_id": ""}, "decision_id"),
    ({"decision_id": "x"}, "body"),  # nothing observed: the message lists what may be
    ({"decision_id": "x", "quality": 1.5}, "quality"),
    ({"decision_id": "x", "quality": "good"}, "quality"),
    ({"decision_id": "x", "quality": None, "success": None}, "body"),
    ({"decision_id": "x", "success": "maybe"}, "success"),
    ({"decision_id": "x", "success": True, "cost_usd": -1}, "cost_usd"),
    ({"decision_id": "x", "success": True, "tokens_in": -3}, "tokens_in"),
    ({"decision_id": "x", "success": True, "tokens_out": 2.5}, "tokens_out"),
    ({"decision_id": "x", "success": True, "latency_ms": -0.1}, "latency_ms"),
    ({"decision_id": "x", "success": True, "fallback_used": "often"}, "fallback_used"),
    ({"decision_id": "x", "success": True, "model_used": ""}, "model_used"),
    ({"decision_id": "x", "success": True, "colour": "red"}, "colour"),
    ({"prompt": "hi", "quality": 1}, "model"),
    ({"prompt": "hi", "model": "m", "quality": 1, "propensity": 0}, "propensity"),
    ({"prompt": "hi", "model": "m", "quality": 1, "timestamp": "yesterday"}, "timestamp"),
    ({"prompt": "hi", "model": "m", "quality": 1, "messages": [{"role": "user",
                                                               "content": "x"}]}, "body"),
    ({"messages": [{"role": "robot", "content": "x"}], "model": "m", "quality": 1},
     "messages.0.role"),
]


@pytest.mark.parametrize(("body", "field"), BAD_FEEDBACK)
def test_bad_feedback_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    r = client.post("/feedback", json=body)
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["detail"]]
    assert field in fields, fields


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"null"])
def test_feedback_body_that_is_not_an_object_is_422(client: TestClient, raw: bytes) -> None:
    r = client.post("/feedback", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "body"


def test_feedback_that_is_not_json_is_422(client: TestClient) -> None:
    r = client.post("/feedback", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize("number", [b"Infinity", b"NaN", b"-Infinity"])
def test_non_finite_cost_is_422(client: TestClient, number: bytes) -> None:
    raw = b'{"decision_id": "x", "success": true, "cost_usd": ' + number + b"}"
    r = client.post("/feedback", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cost_usd"


def test_spend_by_role_real_and_estimated(client: TestClient) -> None:
    a = route(client, role="planner")
    route(client, role="planner")
    route(client, role="coder", tier="large")
    client.post("/feedback", json={"decision_id": a["decision_id"], "success": True,
                                   "cost_usd": 0.5})
    r = client.get("/spend", params={"by": "role"})
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    assert rows["planner"]["calls"] == 2 and rows["planner"]["actual_usd"] == 0.5
    assert rows["planner"]["estimated_calls"] == 1 and rows["planner"]["estimated_usd"] > 0
    assert rows["coder"]["actual_usd"] == 0 and rows["coder"]["estimated_calls"] == 1
    by_tier = {row["key"] for row in client.get("/spend?by=tier").json()["rows"]}
    assert by_tier == {"small", "large"}
    bad = client.get("/spend", params={"by": "colour"})
    assert bad.status_code == 422 and "by" in bad.json()["detail"][0]["field"]


def test_store_disabled_feedback_is_503(settings: Settings) -> None:
    off = settings.model_copy(update={"store": StoreConfig(enabled=False)})
    with client_for(off) as c:
        decision = route(c)
        r = c.post("/feedback", json={"decision_id": decision["decision_id"], "success": True})
        assert r.status_code == 503 and "disabled" in r.json()["detail"]


def test_budget_low_prefers_cheaper_tiers_then_spent_is_402(settings: Settings) -> None:
    budget = BudgetConfig(name="planner-daily", role="planner", limit_usd=1.0,
                          low_fraction=0.5, low_quality_target=0.0)
    with client_for(settings.model_copy(update={"budgets": [budget]})) as c:
        hard = {"prompt": "prove the theorem about primes", "role": "planner"}
        normal = route(c, **hard)
        assert normal["tier"] != "small"
        paid = route(c, role="planner")
        c.post("/feedback", json={"decision_id": paid["decision_id"], "success": True,
                                  "cost_usd": 0.6})
        cheap = route(c, **hard)
        assert cheap["tier"] == "small" and cheap["reason"] == "budget"
        assert "planner-daily" in cheap["detail"]
        assert route(c, **{**hard, "role": "other"})["tier"] == normal["tier"]
        c.post("/feedback", json={"decision_id": cheap["decision_id"], "success": True,
                                  "cost_usd": 0.5})
        r = c.post("/route", json=hard)
        assert r.status_code == 402, r.text
        body = r.json()
        assert body["budget"] == "planner-daily" and body["resets_at"].endswith("Z")
        assert body["spent_usd"] >= 1.0 and body["limit_usd"] == 1.0
        assert route(c, role="other")["tier"] == "small"


def test_a_key_budget_refuses_that_key_only_and_spend_groups_by_key(settings: Settings) -> None:
    keys = [{"name": name, "sha256": hash_key(name + "-key"), "scopes": ["route", "feedback"]}
            for name in ("team-a", "team-b")] + [
           {"name": "ops", "sha256": hash_key("ops-key"), "scopes": ["admin"]}]
    budget = BudgetConfig(name="team-a-daily", api_key="team-a", limit_usd=0.5)
    secured = settings.model_copy(update={
        "auth": AuthConfig.model_validate({"keys": keys}), "budgets": [budget]})
    with client_for(secured) as c:
        def call(key: str, role: str) -> Any:
            return c.post("/route", json={"prompt": "say hello", "role": role},
                          headers={"Authorization": f"Bearer {key}-key"})

        paid = call("team-a", "planner").json()
        r = c.post("/feedback", json={"decision_id": paid["decision_id"], "success": True,
                                      "cost_usd": 0.6},
                   headers={"Authorization": "Bearer team-a-key"})
        assert r.status_code == 201, r.text
        refused = call("team-a", "critic")  # any role of the key: the budget is the key's
        assert refused.status_code == 402, refused.text
        assert refused.json()["budget"] == "team-a-daily"
        assert call("team-b", "planner").status_code == 200  # the same role, another key
        batch = c.post("/route/batch", json={"requests": [{"prompt": "hi"}]},
                       headers={"Authorization": "Bearer team-a-key"})
        assert batch.status_code == 402
        spend = c.get("/spend", params={"by": "api_key"},
                      headers={"Authorization": "Bearer ops-key"}).json()
        by_key = {row["key"]: row for row in spend["rows"]}
        assert by_key["team-a"]["actual_usd"] == 0.6 and by_key["team-b"]["calls"] == 1


def test_drift_gauges_in_metrics(settings: Settings) -> None:
    # learning off: each feedback would otherwise move the next decision's tier (a race)
    with client_for(settings.model_copy(update={"learning": settings.learning.model_copy(
            update={"enabled": False})})) as client:
        check_drift_gauges(client)


def check_drift_gauges(client: TestClient) -> None:
    best = []
    for _ in range(3):
        decision = route(client)
        best.append(max(decision["scores"].values()))
        client.post("/feedback", json={"decision_id": decision["decision_id"], "quality": 0.5})
    route(client, tier="large")
    text = client.get("/metrics").text
    relative = next(line for line in text.splitlines()
                    if line.startswith("tier_router_window_relative_quality "))
    assert float(relative.split()[1]) == pytest.approx(1.5 / sum(best), rel=1e-6)
    assert 'tier_router_window_tier_share{tier="small"} 0.75' in text
    assert 'tier_router_window_tier_share{tier="large"} 0.25' in text
    assert "tier_router_window_success_rate 0.5" in text
    assert "tier_router_quality_target 0.9" in text  # the shipped default
    assert "tier_router_feedback_total{status=\"stored\"} 3.0" in text


def test_shutdown_flushes_and_reload_keeps_recording(settings: Settings) -> None:
    slow = settings.model_copy(update={"store": settings.store.model_copy(
        update={"flush_interval_ms": 10_000, "batch_size": 10_000})})
    with client_for(slow) as c:
        route(c)
        assert c.post("/admin/reload", headers=JSON).status_code == 200
        route(c)
        route(c)
    assert stored(slow).counts()["decisions"] == 3


def test_feedback_needs_the_feedback_scope_and_spend_the_admin_scope(settings: Settings) -> None:
    keys = [{"name": name, "sha256": hash_key(name + "-key"), "scopes": scopes}
            for name, scopes in (("agent", ["route", "feedback"]), ("router-only", ["route"]),
                                 ("ops", ["admin"]))]
    secured = settings.model_copy(update={"auth": AuthConfig.model_validate({"keys": keys})})
    with client_for(secured) as c:
        def call(method: str, path: str, key: str | None, **kw: Any) -> int:
            headers = {"Authorization": f"Bearer {key}-key"} if key else {}
            return c.request(method, path, headers=headers, **kw).status_code

        d = c.post("/route", json={"prompt": "hi"}, headers={"Authorization": "Bearer agent-key"})
        body = {"decision_id": d.json()["decision_id"], "success": True}
        assert call("POST", "/feedback", None, json=body) == 401
        assert call("POST", "/feedback", "router-only", json=body) == 403
        assert call("POST", "/feedback", "agent", json=body) == 201
        assert call("GET", "/spend", "agent") == 403
        assert call("GET", "/spend", "ops") == 200


def test_the_loop_on_a_real_postgres_server(settings: Settings, postgres: Any) -> None:
    url = postgres.new_database("api_feedback")
    on_pg = settings.model_copy(update={"store": StoreConfig(url=url, flush_interval_ms=5)})
    with client_for(on_pg) as c:
        d = route(c, role="planner")
        body = {"decision_id": d["decision_id"], "success": True, "cost_usd": 0.25}
        assert c.post("/feedback", json=body).status_code == 201
        assert c.post("/feedback", json=body).status_code == 200
        route(c, role="coder")
        rows = {r["key"]: r for r in c.get("/spend", params={"by": "role"}).json()["rows"]}
        assert rows["planner"]["actual_usd"] == 0.25 and rows["coder"]["estimated_calls"] == 1
    assert TraceStore(on_pg.store).open().counts() == {"decisions": 2, "outcomes": 1}
