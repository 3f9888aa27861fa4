"""One key cannot hurt another through what it reports or how it batches, against the real app.

Each test sends the hostile request, checks the answer, and checks that the other keys (or the
limits) are as they were. The limit tests run twice: counted in this process, and in a real
Redis (`shared_state`, a throwaway `redis-server`; skipped saying why when there is none).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.config import AuthConfig, BudgetConfig, Settings, SharedStateConfig
from router.guards.auth import hash_key
from tests import redis_server
from tests.api.test_limits import PROMPT, client_for


def keyed(settings: Settings, budgets: list[BudgetConfig] | None = None,
          shared: SharedStateConfig | None = None, tpm: int | None = None,
          rpm: int | None = None) -> Settings:
    """Two route+feedback keys (a limited one and another), a feedback-only key, an admin."""
    auth = AuthConfig.model_validate({"keys": [
        {"name": "agent", "sha256": hash_key("k-agent"), "scopes": ["route", "feedback"],
         "tokens_per_minute": tpm, "rate_per_minute": rpm},
        {"name": "other", "sha256": hash_key("k-other"), "scopes": ["route", "feedback"]},
        {"name": "reporter", "sha256": hash_key("k-reporter"), "scopes": ["feedback"]},
        {"name": "ops", "sha256": hash_key("k-ops"), "scopes": ["admin"]},
    ]})
    return settings.model_copy(update={"auth": auth, "budgets": budgets or [],
                                       "shared_state": shared, "expected_output_tokens": 400})


def as_key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k-{name}"}


@pytest.fixture(params=["local", "redis"])
def shared(request: pytest.FixtureRequest) -> SharedStateConfig | None:
    """No shared state, or a fresh key prefix on a real Redis."""
    if request.param == "local":
        return None
    why = redis_server.why_unavailable()
    if why is not None:
        pytest.skip(f"Redis tests skipped: {why}")
    server: redis_server.RedisServer = request.getfixturevalue("redis")
    return SharedStateConfig(url=server.url, prefix=f"{uuid.uuid4().hex[:8]}:")


def route(c: TestClient, key: str = "agent", **body: Any) -> Any:
    return c.post("/route", json={"prompt": "say hello", **body}, headers=as_key(key))


def test_an_absurd_trace_cost_is_422_and_a_role_budget_stays_whole(settings: Settings) -> None:
    budget = BudgetConfig(name="solvers", role="solver", limit_usd=1.0)
    with client_for(keyed(settings, [budget])) as c:
        trace = {"prompt": "hi", "model": "gpt-4.1", "quality": 1.0, "role": "solver"}
        r = c.post("/feedback", json={**trace, "cost_usd": 1e6}, headers=as_key("reporter"))
        assert r.status_code == 422, r.text
        detail = r.json()["detail"][0]
        assert detail["field"] == "cost_usd" and detail["limit"] < 10
        assert "limits.report_slack" in detail["message"]
        ok = c.post("/feedback", json={**trace, "cost_usd": detail["limit"]},
                    headers=as_key("reporter"))  # at the bound: stored, but the key's own
        assert ok.status_code == 201, ok.text
        assert route(c, "other", role="solver").status_code == 200
        spend = c.get("/spend", params={"by": "role"}, headers=as_key("ops")).json()
        assert {r["key"] for r in spend["rows"]} == {"solver"}


def test_a_trace_counts_toward_its_own_key_budget_only(settings: Settings) -> None:
    own = BudgetConfig(name="agent-only", api_key="agent", limit_usd=0.01)
    fleet = BudgetConfig(name="fleet", limit_usd=0.01)
    with client_for(keyed(settings, [own, fleet])) as c:
        trace = {"prompt": "hi", "model": "gpt-4.1", "quality": 1.0, "cost_usd": 0.5}
        assert c.post("/feedback", json=trace, headers=as_key("agent")).status_code == 201
        refused = route(c, "agent")
        assert refused.status_code == 402 and refused.json()["budget"] == "agent-only"
        assert route(c, "other").status_code == 200  # the fleet budget was not charged


def test_a_trace_reporting_a_cost_must_name_a_configured_model(settings: Settings) -> None:
    with client_for(keyed(settings)) as c:
        trace = {"prompt": "hi", "model": "made-up-9000", "quality": 1.0, "cost_usd": 0.01}
        r = c.post("/feedback", json=trace, headers=as_key("reporter"))
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["field"] == "model"
        label_only = {"prompt": "hi", "model": "made-up-9000", "quality": 1.0}
        assert c.post("/feedback", json=label_only,
                      headers=as_key("reporter")).status_code == 201  # nothing to bound


def test_absurd_tokens_on_ones_own_decision_are_422_and_spend_is_unmoved(
        settings: Settings) -> None:
    with client_for(keyed(settings)) as c:
        decision = route(c).json()
        before = c.get("/spend", params={"by": "api_key"}, headers=as_key("ops")).json()
        for field in ("tokens_in", "tokens_out"):
            r = c.post("/feedback", json={"decision_id": decision["decision_id"],
                                          "success": True, field: 10**9},
                       headers=as_key("agent"))
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
        after = c.get("/spend", params={"by": "api_key"}, headers=as_key("ops")).json()
        assert after["rows"] == before["rows"]
        good = c.post("/feedback", json={"decision_id": decision["decision_id"],
                                         "success": True, "tokens_in": 12, "tokens_out": 30},
                      headers=as_key("agent"))
        assert good.status_code == 201  # nothing of the refused reports was stored


def test_feedback_on_an_unknown_decision_is_404_at_once_with_retry_after(
        settings: Settings) -> None:
    with client_for(keyed(settings)) as c:
        r = c.post("/feedback", json={"decision_id": "f" * 32, "success": True},
                   headers=as_key("agent"))
        assert r.status_code == 404 and int(r.headers["Retry-After"]) >= 1
        assert "another replica" in r.json()["detail"]


def test_reporting_zero_tokens_refunds_only_unused_output(
        settings: Settings, shared: SharedStateConfig | None) -> None:
    with client_for(keyed(settings, shared=shared, tpm=2000)) as c:
        passed = 0
        for _ in range(10):  # each call: 499 measured input + 100 reserved output
            r = c.post("/route", json={"prompt": PROMPT, "max_tokens": 100},
                       headers=as_key("agent"))
            if r.status_code != 200:
                assert r.status_code == 429, r.text
                break
            passed += 1
            fb = c.post("/feedback", json={"decision_id": r.json()["decision_id"],
                                           "success": True, "tokens_in": 0, "tokens_out": 0},
                        headers=as_key("agent"))
            assert fb.status_code == 201, fb.text
        assert passed == 3  # 3 x 499 input stays charged: a fourth needs 1,497 + 599 > 2,000
        assert route(c, "other").status_code == 200


def test_every_batch_item_is_a_request_against_rate_per_minute(
        settings: Settings, shared: SharedStateConfig | None) -> None:
    with client_for(keyed(settings, shared=shared, rpm=5)) as c:
        batch = {"requests": [{"prompt": "hi"}] * 4}
        r = c.post("/route/batch", json=batch, headers=as_key("agent"))
        assert r.status_code == 200 and len(r.json()["decisions"]) == 4
        again = c.post("/route/batch", json=batch, headers=as_key("agent"))
        assert again.status_code == 429 and "each item of a batch is one" in again.json()["detail"]
        assert route(c, "other").status_code == 200


def test_a_refused_batch_gives_back_every_charge(
        settings: Settings, shared: SharedStateConfig | None) -> None:
    with client_for(keyed(settings, shared=shared, tpm=2000)) as c:
        fits = {"prompt": PROMPT, "max_tokens": 100}  # 599 tokens
        batch = {"requests": [fits, fits, fits, fits]}  # 2,396: the fourth does not fit
        r = c.post("/route/batch", json=batch, headers=as_key("agent"))
        assert r.status_code == 429, r.text
        for _ in range(3):  # the three charged before the refusal were given back
            assert c.post("/route", json=fits, headers=as_key("agent")).status_code == 200


def test_a_keyed_trace_stays_out_of_shared_budgets_when_they_are_read_back_from_the_store(
        settings: Settings) -> None:
    solvers = BudgetConfig(name="solvers", role="solver", limit_usd=0.01)
    own = BudgetConfig(name="reporter-only", api_key="reporter", limit_usd=0.01)
    with client_for(keyed(settings, [solvers, own])) as c:
        trace = {"prompt": "hi", "model": "gpt-4.1", "quality": 1.0, "role": "solver",
                 "cost_usd": 0.5}
        assert c.post("/feedback", json=trace, headers=as_key("reporter")).status_code == 201
        loop = c.app.state.holder.loop
        loop.refresh_budgets()  # what the refresh thread does every 15 s
        assert route(c, "other", role="solver").status_code == 200
        spent = {s.budget.name: s.spent_usd for s in loop.budgets.states("solver", "reporter")}
        assert spent["solvers"] < 0.01
        assert loop.budgets.states(None, "reporter")[0].spent_usd == 0.5  # its own budget
        rows = c.get("/spend", params={"by": "api_key"}, headers=as_key("ops")).json()["rows"]
        assert {r["key"]: r["actual_usd"] for r in rows}["reporter"] == 0.5
