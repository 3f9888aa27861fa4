"""Model health through the real app: /feedback errors open circuits, decisions say what they
skipped, a forced tier that is down is a 503, /tiers and /metrics show each model's health."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import HealthConfig, Settings, SharedStateConfig, StoreConfig, load_settings
from router.errors import ConfigError
from router.serving.model_health import STATS_S
from tests import redis_server
from tests.clocks import SkippingClock
from tests.conftest import BrokenEmbedder, FakeEmbedder

HEALTH = HealthConfig(window_s=60, min_calls=3, max_error_rate=0.5, cooldown_s=30,
                      probe_share=0.1)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    s = settings.model_copy(update={"health": HEALTH})
    with TestClient(create_app(settings=s, embedder_factory=lambda cfg: FakeEmbedder())) as c:
        yield c


def route(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/route", json={"prompt": "say hello", **body})
    assert r.status_code == 200, r.text
    return r.json()


def report(client: TestClient, model: str, n: int, **outcome: Any) -> None:
    """`n` routed calls (forced to the model's tier) and their outcomes on `model`."""
    tier = next(t["name"] for t in client.get("/tiers").json() if model in t["models"])
    for _ in range(n):
        decision = route(client, tier=tier)
        body = {"decision_id": decision["decision_id"], "model_used": model,
                "success": "error" not in outcome, **outcome}
        r = client.post("/feedback", json=body)
        assert r.status_code == 201, r.text
    stats_window_passes(client)


def stats_window_passes(*clients: TestClient) -> None:
    """STATS_S passes on each app's model-health clock, without a sleep: outcomes that open no
    circuit show in the next snapshot."""
    for client in clients:
        health = client.app.state.holder.loop.health
        if not isinstance(health.clock, SkippingClock):
            health.clock = SkippingClock()  # real time until the first skip
        health.clock.advance(STATS_S)


def health_of(client: TestClient, model: str) -> dict[str, Any]:
    for tier in client.get("/tiers").json():
        for entry in tier["health"]:
            if entry["model"] == model:
                return entry
    raise AssertionError(model)


def test_timeouts_open_the_circuit_and_decisions_skip_the_model(client: TestClient) -> None:
    assert route(client, tier="small")["model"] == "gpt-4.1-nano"
    report(client, "gpt-4.1-nano", 3, error="timeout", latency_ms=30_000)
    decision = route(client, tier="small")
    assert decision["model"] == "gemini-2.0-flash-001"
    assert decision["fallbacks"][-1] == "gpt-4.1-nano"  # last resort, never first
    assert decision["detail"].startswith(
        "skipped gpt-4.1-nano (circuit open: 3 of 3 calls failed in the last 60 s (timeout 3)")
    nano = health_of(client, "gpt-4.1-nano")
    assert (nano["state"], nano["calls"], nano["errors"], nano["error_rate"]) == (
        "open", 3, 3, 1.0)
    assert nano["retry_at"] == pytest.approx(time.time() + 30, abs=5)
    assert nano["latency_p50_ms"] is None  # a timeout's latency is not the model's


def test_a_fallback_chains_failed_links_count_against_their_own_models(
    client: TestClient,
) -> None:
    """The agent tried nano (timed out), then gemini (answered): one report says both."""
    for _ in range(3):
        decision = route(client, tier="small")
        r = client.post("/feedback", json={
            "decision_id": decision["decision_id"], "model_used": "gemini-2.0-flash-001",
            "latency_ms": 420, "fallback_used": True,
            "attempts": [{"model": "gpt-4.1-nano", "error": "timeout", "latency_ms": 30000}]})
        assert r.status_code == 201, r.text
    stats_window_passes(client)
    assert health_of(client, "gpt-4.1-nano")["state"] == "open"
    gemini = health_of(client, "gemini-2.0-flash-001")
    assert (gemini["state"], gemini["calls"], gemini["errors"]) == ("closed", 3, 0)
    assert route(client, tier="small")["model"] == "gemini-2.0-flash-001"


def test_a_chains_failed_links_reported_after_a_label_still_count_once(
    client: TestClient,
) -> None:
    """A grader's label arrives first, the gateway's report of the chain after it."""
    chain = {"model_used": "gemini-2.0-flash-001", "latency_ms": 420, "fallback_used": True,
             "attempts": [{"model": "gpt-4.1-nano", "error": "timeout", "latency_ms": 30000}]}
    for _ in range(3):
        did = route(client, tier="small")["decision_id"]
        assert client.post("/feedback", json={"decision_id": did, "quality": 1.0}
                           ).status_code == 201
        r = client.post("/feedback", json={"decision_id": did, **chain})
        assert r.status_code == 200 and r.json()["status"] == "completed", r.text
        again = client.post("/feedback", json={"decision_id": did, **chain})
        assert again.json()["status"] == "duplicate"  # counted once
    stats_window_passes(client)
    nano = health_of(client, "gpt-4.1-nano")
    assert (nano["state"], nano["calls"], nano["errors"]) == ("open", 3, 3)
    other = client.post("/feedback", json={"decision_id": did, **chain, "attempts": [
        {"model": "gpt-4.1-nano", "error": "server_error"}]})
    assert other.status_code == 409 and "attempts" in other.json()["detail"]


def test_attempts_are_validated(client: TestClient) -> None:
    decision = route(client)
    bad = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                         "latency_ms": 1, "attempts": [{"model": "x"}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "attempts.0.error"
    many = [{"model": "x", "error": "timeout"}] * 17
    r = client.post("/feedback", json={"decision_id": decision["decision_id"], "latency_ms": 1,
                                       "attempts": many})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "attempts"


def test_bad_requests_do_not_count_against_the_model(client: TestClient) -> None:
    report(client, "gpt-4.1-nano", 4, error="bad_request")
    assert route(client, tier="small")["model"] == "gpt-4.1-nano"
    assert health_of(client, "gpt-4.1-nano")["calls"] == 0


def test_a_forced_tier_that_is_down_is_a_503_naming_it(client: TestClient) -> None:
    report(client, "gpt-4.1-nano", 3, error="server_error")
    report(client, "gemini-2.0-flash-001", 3, error="rate_limited")
    r = client.post("/route", json={"prompt": "say hello", "tier": "small"})
    assert r.status_code == 503, r.text
    body = r.json()
    assert (body["error"], body["tier"]) == ("no healthy model", "small")
    assert body["detail"].startswith("tier 'small' is forced and has no healthy model")
    assert 1 <= int(r.headers["retry-after"]) <= 30
    small = next(t for t in client.get("/tiers").json() if t["name"] == "small")
    assert small["available"] is False
    shadow = route(client, tier="small", shadow=True)  # nobody follows it: never refused
    assert shadow["tier"] == "small" and shadow["shadow"] is True
    moved = route(client, quality_target=0.0)  # the classifier would pick small
    assert (moved["tier"], moved["reason"]) == ("medium", "health_upgrade")
    assert moved["detail"].startswith("tier 'small' is down (gpt-4.1-nano (circuit open")
    metrics = client.get("/metrics").text
    assert 'tier_router_model_circuit_state{model="gemini-2.0-flash-001",state="open",' \
        'tier="small"} 1.0' in metrics
    assert 'tier_router_errors_total{kind="no_healthy_model"} 1.0' in metrics


def test_latency_sensitive_calls_get_the_fastest_model_of_their_tier(client: TestClient) -> None:
    report(client, "gpt-4.1-nano", 3, latency_ms=1200)
    report(client, "gemini-2.0-flash-001", 3, latency_ms=300)
    assert route(client, tier="small")["model"] == "gpt-4.1-nano"
    fast = route(client, tier="small", latency_sensitive=True)
    assert fast["model"] == "gemini-2.0-flash-001"
    assert fast["detail"] == "latency_sensitive: gemini-2.0-flash-001 first (median 300 ms)"
    gemini = health_of(client, "gemini-2.0-flash-001")
    assert (gemini["latency_p50_ms"], gemini["latency_p95_ms"]) == (300.0, 300.0)
    metrics = client.get("/metrics").text
    assert ('tier_router_model_latency_ms{model="gpt-4.1-nano",quantile="0.95",tier="small"} '
            '1200.0') in metrics


def test_an_unknown_error_kind_is_a_422_naming_the_field_and_the_kinds(
    client: TestClient,
) -> None:
    decision = route(client)
    r = client.post("/feedback", json={"decision_id": decision["decision_id"], "success": False,
                                       "error": "HTTP 503 from upstream"})
    assert r.status_code == 422
    [problem] = r.json()["detail"]
    assert problem["field"] == "error"
    assert "'timeout'" in problem["message"] and "'server_error'" in problem["message"]


def test_latency_sensitive_must_be_a_boolean(client: TestClient) -> None:
    r = client.post("/route", json={"prompt": "hi", "latency_sensitive": "yes"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "latency_sensitive"


def test_the_health_section_is_validated(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("tiers: [{name: a, models: [m], input_price_per_m: 1, output_price_per_m: 1,"
                    " context_window: 10}]\nsafe_tier: a\nhealth: {min_calls: 0}\n")
    with pytest.raises(ConfigError, match="health.min_calls"):
        load_settings(path)


def test_a_degraded_decision_leaves_a_safe_tier_that_is_down(settings: Settings) -> None:
    """The model failed (fail_open: the safe tier, large) and large is down: medium."""
    s = settings.model_copy(update={"health": HEALTH})
    app = create_app(settings=s, embedder_factory=lambda cfg: BrokenEmbedder())
    with TestClient(app) as client:
        for model in ("gpt-4.1", "claude-3-7-sonnet-20250219"):
            report(client, model, 3, error="server_error")
        decision = route(client)
        assert (decision["tier"], decision["reason"]) == ("medium", "degraded")
        assert decision["detail"].startswith("prediction failed: RuntimeError: encoder exploded"
                                             "; tier 'large' is down (gpt-4.1 (circuit open")


def test_two_apps_on_one_redis_share_model_health(settings: Settings, tmp_path) -> None:
    """Through the holder's wiring: failures reported to one replica move the other's
    decisions off the model too."""
    why = redis_server.why_unavailable()
    if why is not None:
        pytest.skip(why)
    server = redis_server.start_server()
    try:
        shared = SharedStateConfig(url=server.url, prefix=f"{uuid.uuid4().hex[:8]}:")
        apps = []
        for i in range(2):
            store = StoreConfig(url=f"sqlite:///{tmp_path / f'traces-{i}.db'}",
                                flush_interval_ms=5)
            s = settings.model_copy(update={"health": HEALTH, "shared_state": shared,
                                            "store": store})
            apps.append(TestClient(create_app(settings=s,
                                              embedder_factory=lambda cfg: FakeEmbedder())))
        with apps[0] as one, apps[1] as other:
            assert route(other, tier="small")["model"] == "gpt-4.1-nano"
            report(one, "gpt-4.1-nano", 3, error="timeout")
            stats_window_passes(other)  # another replica's circuit opening shows after STATS_S
            decision = route(other, tier="small")
            assert decision["model"] == "gemini-2.0-flash-001", decision
            assert health_of(other, "gpt-4.1-nano")["state"] == "open"
    finally:
        server.close()


def test_a_shadow_calls_outcome_never_counts_against_the_unfollowed_pick(
    client: TestClient,
) -> None:
    """A shadow caller without `model` reports timeouts of its own call: the router's pick made
    no call, its circuit stays closed."""
    for _ in range(3):
        decision = route(client, tier="small", shadow=True)
        assert decision["model"] == "gpt-4.1-nano"
        r = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                           "error": "timeout"})
        assert r.status_code == 201, r.text
    stats_window_passes(client)
    nano = health_of(client, "gpt-4.1-nano")
    assert (nano["state"], nano["calls"]) == ("closed", 0)
    assert route(client, tier="small")["model"] == "gpt-4.1-nano"


def test_a_batch_refused_for_a_down_tier_counts_nothing_in_its_runs(client: TestClient) -> None:
    """One call of a batch cannot be served (forced onto a down tier): no decision is answered,
    so none counts in its run, and a retried call keeps the id its limits were charged under."""
    report(client, "gpt-4.1-nano", 3, error="timeout")
    report(client, "gemini-2.0-flash-001", 3, error="timeout")
    batch = [{"prompt": "hello", "run_id": "r1", "tier": "large"},
             {"prompt": "hi", "tier": "small"}]
    r = client.post("/route/batch", json={"requests": batch})
    assert r.status_code == 503, r.text
    decision = route(client, prompt="hello", run_id="r1", tier="large")
    assert decision["run_spend_usd"] == pytest.approx(decision["estimated_cost_usd"])

    from router.schemas import RouteRequest  # the micro-batcher's retry: each call alone
    service = client.app.state.holder.service
    calls = [RouteRequest(prompt="hello", run_id="r2", tier="large"),
             RouteRequest(prompt="hi", tier="small")]
    admissions = [service.admit(call) for call in calls]
    with pytest.raises(Exception, match="no healthy model"):
        service.route_admitted(calls, admissions)
    (alone,) = service.route_admitted(calls[:1], admissions[:1])
    assert alone.decision_id == admissions[0].decision_id
    assert alone.run_spend_usd == pytest.approx(alone.estimated_cost_usd)


def test_a_call_refused_for_a_down_tier_gives_its_tokens_back(settings: Settings) -> None:
    """A 503 (no healthy model) is no call: the key's tokens per minute are not spent on it,
    so its other calls, which other tiers can serve, are not 429."""
    from router.config import ApiKeyConfig, AuthConfig
    from router.guards.auth import hash_key
    auth = AuthConfig(keys=[ApiKeyConfig(name="a", sha256=hash_key("k-a"),
                                         scopes=["route", "feedback"], tokens_per_minute=2000)])
    s = settings.model_copy(update={"health": HEALTH, "auth": auth})
    headers = {"X-API-Key": "k-a"}
    with TestClient(create_app(settings=s, embedder_factory=lambda cfg: FakeEmbedder())) as c:
        for model in ("gpt-4.1-nano", "gemini-2.0-flash-001"):
            for _ in range(3):
                d = c.post("/route", json={"prompt": "hi", "tier": "small", "max_tokens": 10},
                           headers=headers).json()
                c.post("/feedback", json={"decision_id": d["decision_id"], "model_used": model,
                                          "error": "timeout", "tokens_in": 1, "tokens_out": 0},
                       headers=headers)
        stats_window_passes(c)
        forced = {"prompt": "hi", "tier": "small", "max_tokens": 500}
        assert [c.post("/route", json=forced, headers=headers).status_code
                for _ in range(6)] == [503] * 6
        batch = {"requests": [{"prompt": "hello", "max_tokens": 500}, forced]}
        for _ in range(3):
            assert c.post("/route/batch", json=batch, headers=headers).status_code == 503
        r = c.post("/route", json={"prompt": "hi", "max_tokens": 500}, headers=headers)
        assert r.status_code == 200, r.text


def test_one_key_cannot_take_a_tier_down_for_the_others(settings: Settings) -> None:
    """The hostile report: timeouts for every model of `large`, each repeated, on many of one
    key's own decisions. Each model counts once per report and the circuit waits for a second
    key's evidence (health.min_keys); an attempt outside the decision's chain is a 422."""
    from router.config import AuthConfig
    from tests.unit.guards.test_auth import entry

    auth = AuthConfig(keys=[entry("mallory", "k-m", ["route", "feedback"]),
                            entry("alice", "k-a", ["route", "feedback"])])
    s = settings.model_copy(update={"health": HEALTH, "auth": auth})
    large = ["gpt-4.1", "claude-3-7-sonnet-20250219"]
    with TestClient(create_app(settings=s, embedder_factory=lambda cfg: FakeEmbedder())) as c:
        def hostile_report(key: str) -> int:
            d = c.post("/route", json={"prompt": "hi", "tier": "large"},
                       headers={"X-API-Key": key}).json()
            attempts = [{"model": m, "error": "timeout"} for m in large * 8]
            r = c.post("/feedback", json={"decision_id": d["decision_id"], "error": "timeout",
                                          "model_used": large[0], "attempts": attempts},
                       headers={"X-API-Key": key})
            return r.status_code

        assert all(hostile_report("k-m") == 201 for _ in range(10))
        time.sleep(0.06)
        tiers = {t["name"]: t for t in c.get("/tiers", headers={"X-API-Key": "k-a"}).json()}
        assert [m["state"] for m in tiers["large"]["health"]] == ["closed", "closed"]
        assert [m["errors"] for m in tiers["large"]["health"]] == [10, 10]  # once per report
        r = c.post("/route", json={"prompt": "hi", "tier": "large"}, headers={"X-API-Key": "k-a"})
        assert r.status_code == 200 and r.json()["model"] == "gpt-4.1"

        d = c.post("/route", json={"prompt": "hi", "tier": "large"},
                   headers={"X-API-Key": "k-m"}).json()
        r = c.post("/feedback", json={"decision_id": d["decision_id"], "error": "timeout",
                                      "attempts": [{"model": "gpt-4.1-nano", "error": "timeout"}]},
                   headers={"X-API-Key": "k-m"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["field"] == "attempts.0.model"

        assert hostile_report("k-a") == 201  # a second key's failure: evidence from two keys
        time.sleep(0.06)
        tiers = {t["name"]: t for t in c.get("/tiers", headers={"X-API-Key": "k-a"}).json()}
        assert [m["state"] for m in tiers["large"]["health"]] == ["open", "open"]
