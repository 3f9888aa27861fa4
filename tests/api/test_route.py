"""POST /route, /route/batch, /tiers, health and metrics through the real app (fake embedder)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import BrokenEmbedder, FakeEmbedder


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        yield c


def test_route_prompt_answers_every_field(client: TestClient) -> None:
    r = client.post("/route", json={"prompt": "say hello"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["scores"]) == ["small", "medium", "large"]
    assert all(0.0 <= v <= 1.0 for v in body["scores"].values())
    assert body["reason"] == "classifier"
    assert body["tier"] == "small" and body["model"] == "gpt-4.1-nano"
    assert body["fallbacks"][0] == "gemini-2.0-flash-001"
    assert body["fallbacks"][-1] == "claude-3-7-sonnet-20250219"
    assert body["estimated_tokens_in"] > 0 and body["estimated_cost_usd"] > 0
    assert body["router_version"] == "synthetic-test"
    assert len(body["decision_id"]) == 32


def test_hard_prompt_goes_to_a_stronger_tier(client: TestClient) -> None:
    easy = client.post("/route", json={"prompt": "say hello"}).json()
    hard = client.post("/route", json={"prompt": "prove the theorem about primes"}).json()
    assert hard["scores"]["small"] < easy["scores"]["small"]
    assert hard["tier"] != "small"


def test_messages_with_tools_and_tool_calls(client: TestClient) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are an agent."},
            {"role": "user", "content": [{"type": "text", "text": "say hello"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "hello"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "run_id": "r1", "role": "planner", "step": "3", "user": "u",
    }
    r = client.post("/route", json=body)
    assert r.status_code == 200, r.text


def test_quality_target_moves_the_choice(client: TestClient) -> None:
    low = client.post("/route", json={"prompt": "say hello", "quality_target": 0.0}).json()
    high = client.post("/route", json={"prompt": "say hello", "quality_target": 1.0}).json()
    assert low["tier"] == "small"
    assert high["tier"] == "large"  # exactly 1: the strongest tier


def test_forced_tier_and_task_rule(client: TestClient) -> None:
    forced = client.post("/route", json={"prompt": "say hello", "tier": "medium"}).json()
    assert (forced["tier"], forced["reason"]) == ("medium", "forced")
    plan = client.post("/route", json={"prompt": "say hello", "task": "plan"}).json()
    assert (plan["tier"], plan["reason"]) == ("large", "task_rule")


def test_budget(client: TestClient) -> None:
    r = client.post(
        "/route",
        json={"prompt": "prove the theorem about primes", "quality_target": 1.0,
              "max_cost_usd": 0.0002},
    ).json()
    assert r["reason"] == "budget"
    assert r["estimated_cost_usd"] <= 0.0002


def test_batch_keeps_order(client: TestClient) -> None:
    reqs = [{"prompt": "say hello"}, {"prompt": "x", "tier": "large"}, {"prompt": "name a colour"}]
    r = client.post("/route/batch", json={"requests": reqs})
    assert r.status_code == 200, r.text
    tiers = [d["tier"] for d in r.json()["decisions"]]
    assert tiers[1] == "large" and len(tiers) == 3


def test_tiers_health_ready_metrics(client: TestClient) -> None:
    tiers = client.get("/tiers").json()
    assert [t["name"] for t in tiers] == ["small", "medium", "large"]
    assert tiers[0]["input_price_per_m"] <= tiers[-1]["input_price_per_m"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/route", json={"prompt": "say hello"})
    text = client.get("/metrics").text
    assert 'tier_router_decisions_total{reason="classifier",tier="small"}' in text
    assert "tier_router_route_latency_seconds_bucket" in text


def test_degraded_when_encoder_fails(settings: Settings) -> None:
    app = create_app(settings=settings, embedder_factory=lambda cfg: BrokenEmbedder())
    with TestClient(app) as c:
        r = c.post("/route", json={"prompt": "say hello"})
        assert r.status_code == 200
        body = r.json()
        assert (body["tier"], body["reason"]) == ("large", "degraded")
        assert body["scores"] == {"small": None, "medium": None, "large": None}
        assert "encoder exploded" in body["detail"]
        assert "tier_router_degraded_total 1.0" in c.get("/metrics").text


def test_fail_closed_answers_503(settings: Settings) -> None:
    closed = settings.model_copy(update={"fail_open": False})
    app = create_app(settings=closed, embedder_factory=lambda cfg: BrokenEmbedder())
    with TestClient(app) as c:
        r = c.post("/route", json={"prompt": "say hello"})
        assert r.status_code == 503
        assert "encoder exploded" in r.json()["detail"]


def test_missing_model_degrades_and_is_not_ready(settings: Settings, tmp_path) -> None:
    broken = settings.model_copy(update={"model_dir": tmp_path / "nothing"})
    app = create_app(settings=broken, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 503
        body = c.post("/route", json={"prompt": "say hello"}).json()
        assert body["reason"] == "degraded" and body["tier"] == "large"


def test_the_startup_heap_is_frozen_while_serving(settings: Settings) -> None:
    """Full GC collections would otherwise walk every library and model object (api/app.py)."""
    import gc

    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        assert gc.get_freeze_count() > 0
        assert c.post("/route", json={"prompt": "say hello"}).status_code == 200
    assert gc.get_freeze_count() == 0
