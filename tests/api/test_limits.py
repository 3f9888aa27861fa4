"""Tokens per minute, group budgets and shared state through the real app.

TPM: charged at /route (estimated input + the request's own max_tokens, else the config's
expected output), corrected by /feedback; 429 with Retry-After naming the limit; a call alone
over the limit is a 422 naming the field and the limit. Shared state: two app instances on one
real Redis (a throwaway `redis-server`, skipped saying why when there is none) enforce one
limit; /readyz and /metrics say when Redis is lost, and it is used again once back.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import AuthConfig, BudgetConfig, Settings, SharedStateConfig
from router.guards.auth import hash_key
from tests import redis_server
from tests.conftest import FakeEmbedder
from tests.ports import free_port

PROMPT = "word " * 396  # 1,980 characters: 495 tokens + 4 per message = 499 estimated


def with_limits(settings: Settings, tpm: int | None = 2000, rpm: int | None = None,
                budgets: list[BudgetConfig] | None = None,
                shared: SharedStateConfig | None = None) -> Settings:
    auth = AuthConfig.model_validate({"keys": [
        {"name": "agent", "sha256": hash_key("k-agent"), "scopes": ["route", "feedback"],
         "tokens_per_minute": tpm, "rate_per_minute": rpm},
        {"name": "other", "sha256": hash_key("k-other"), "scopes": ["route", "feedback"]},
    ]})
    return settings.model_copy(update={"auth": auth, "budgets": budgets or [],
                                       "shared_state": shared, "expected_output_tokens": 400})


AGENT = {"Authorization": "Bearer k-agent"}


def client_for(settings: Settings) -> TestClient:
    return TestClient(create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder()))


def route(c: TestClient, headers: dict[str, str] = AGENT, **body: Any) -> Any:
    return c.post("/route", json={"prompt": PROMPT, **body}, headers=headers)


def test_tokens_per_minute_429_then_feedback_gives_unused_tokens_back(settings: Settings) -> None:
    with client_for(with_limits(settings)) as c:
        first = route(c, max_tokens=600)  # 499 + 600
        assert first.status_code == 200, first.text
        assert route(c).status_code == 200  # 499 + 400: 1,998 of 2,000
        r = route(c, max_tokens=1)
        assert r.status_code == 429 and r.json()["error"] == "rate limited"
        assert "limit of 2000 tokens per minute (tokens_per_minute)" in r.json()["detail"]
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert route(c, headers={"Authorization": "Bearer k-other"}).status_code == 200
        fb = c.post("/feedback", headers=AGENT, json={
            "decision_id": first.json()["decision_id"], "success": True, "tokens_in": 480,
            "tokens_out": 20})  # 20 of the 600 reserved output used; the input stays at the
        assert fb.status_code == 201, fb.text  # 499 measured at /route: 519 of 1,099 charged
        assert route(c, max_tokens=500).status_code == 429  # 519 + 899 + 999 > 2,000
        assert route(c, max_tokens=80).status_code == 200  # 519 + 899 + 579: fits only now
        assert route(c, max_tokens=1).status_code == 429


def test_a_call_alone_over_the_limit_is_422_naming_the_field(settings: Settings) -> None:
    with client_for(with_limits(settings, tpm=1000)) as c:
        r = route(c, max_tokens=600)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"][0]
        assert detail["field"] == "max_tokens" and detail["limit"] == 1000
        assert "tokens_per_minute: 1000" in detail["message"]
        r = c.post("/route", headers=AGENT, json={"messages": [
            {"role": "user", "content": PROMPT * 3}], "max_completion_tokens": 10})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "messages"
        assert route(c, dry_run=True, max_tokens=600).status_code == 422
        assert route(c, max_tokens=100).status_code == 200  # 599: fits


def test_dry_runs_are_not_charged(settings: Settings) -> None:
    with client_for(with_limits(settings, tpm=1000)) as c:
        for _ in range(3):
            assert route(c, dry_run=True, max_tokens=400).status_code == 200
        assert route(c, max_tokens=400).status_code == 200


def test_a_team_budget_is_402_naming_it(settings: Settings) -> None:
    team = BudgetConfig(name="agents-team", api_keys=["agent", "other"], limit_usd=0.001)
    fleet = BudgetConfig(name="fleet", limit_usd=1000)
    with client_for(with_limits(settings, tpm=None, budgets=[team, fleet])) as c:
        for _ in range(40):
            r = route(c, headers={"Authorization": "Bearer k-other"}, tier="large")
            if r.status_code == 402:
                break
            assert r.status_code == 200, r.text
        assert r.status_code == 402 and r.json()["budget"] == "agents-team"
        assert route(c).json()["budget"] == "agents-team"  # the team's other key too


def test_two_apps_on_one_redis_enforce_one_limit_and_survive_its_loss(
    settings: Settings, redis: redis_server.RedisServer, tmp_path: Any,
) -> None:
    shared = SharedStateConfig(url=redis.url, prefix=f"{uuid.uuid4().hex[:8]}:", retry_s=0.05)
    one = with_limits(settings, tpm=None, rpm=5, shared=shared)
    two = one.model_copy(update={"store": one.store.model_copy(
        update={"url": f"sqlite:///{tmp_path / 'two.db'}"})})
    with client_for(one) as a, client_for(two) as b:
        codes = [route(c).status_code for c in (a, b) * 5]
        assert codes.count(200) == 5 and codes.count(429) == 5  # 5 for both, not 5 each
        ready = a.get("/readyz").json()
        assert ready["shared_state"].startswith("limits and spend counted in redis://")
        assert "tier_router_shared_state_up 1.0" in a.get("/metrics").text
        redis.stop()
        try:
            codes = [route(c).status_code for c in (a, b) * 6]
            assert codes.count(200) == 10 and 500 not in codes  # per process: 5 each
            assert "unreachable" in a.get("/readyz").json()["shared_state"]
            assert "tier_router_shared_state_up 0.0" in b.get("/metrics").text
        finally:
            redis.start()
        import time

        time.sleep(0.1)  # past retry_s: the next call tries Redis again
        assert "tier_router_shared_state_up 0.0" in a.get("/metrics").text  # no call yet
        assert a.get("/readyz").json()["shared_state"].startswith("limits and spend counted")
        assert "tier_router_shared_state_up 1.0" in a.get("/metrics").text  # /readyz probed
        assert b.get("/readyz").json()["shared_state"].startswith("limits and spend counted")
        codes = [route(c).status_code for c in (a, b) * 5]
        assert codes.count(200) == 5  # one shared window again (a new Redis starts empty)


def test_refuse_answers_429_naming_the_cause(
    settings: Settings, redis: redis_server.RedisServer,
) -> None:
    shared = SharedStateConfig(url=f"redis://127.0.0.1:{free_port()}/0",
                               on_unavailable="refuse")
    with client_for(with_limits(settings, tpm=5000, shared=shared)) as c:
        r = route(c)
        assert r.status_code == 429 and r.json()["error"] == "shared limits unavailable"
        assert "on_unavailable is 'refuse'" in r.json()["detail"] and r.headers["Retry-After"]
        assert route(c, headers={"Authorization": "Bearer k-other"}).status_code == 200
        assert c.get("/readyz").status_code == 200


def test_two_apps_on_one_redis_hold_one_runs_cap(
    settings: Settings, redis: redis_server.RedisServer, tmp_path: Any,
) -> None:
    shared = SharedStateConfig(url=redis.url, prefix=f"{uuid.uuid4().hex[:8]}:")
    one = with_limits(settings, tpm=None, shared=shared)
    two = one.model_copy(update={"store": one.store.model_copy(
        update={"url": f"sqlite:///{tmp_path / 'two.db'}"})})
    with client_for(one) as a, client_for(two) as b:
        first = route(a, run_id="loop-1", tier="large").json()
        cap = 1.5 * first["estimated_cost_usd"]  # room for one more call, not two
        second = route(b, run_id="loop-1", tier="large", max_run_cost_usd=cap)
        assert second.status_code == 200 and second.json()["run_spend_usd"] == pytest.approx(
            2 * first["estimated_cost_usd"])  # replica b counts replica a's call
        third = route(a, run_id="loop-1", tier="large", max_run_cost_usd=cap)
        assert third.status_code == 402 and "loop-1" in third.text, third.text
