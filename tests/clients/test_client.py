"""RouterClient and AsyncRouterClient against a real `tier-router serve`: route a chat-completions
body, batch, report (labelled and outcome-only), refusals, API keys, and fail-open when the
router is unreachable (a closed port) or answers 503 after retries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from tier_router_client import (
    AsyncRouterClient,
    Decision,
    RouterClient,
    RouterRefused,
    RouterUnavailable,
)

from tests.api.test_reload import write_config
from tests.clients.conftest import AGENT, LIMITED, spend
from tests.integration.service import Server

CHAT = {"model": "gpt-4.1", "temperature": 0.2, "max_tokens": 200,
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Prove the theorem about primes."}]}


def test_route_a_chat_completions_body_then_report(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        decision = router.route(CHAT, run_id="client-run-1", role="prover")
        answer = httpx.get(f"{live.url}/tiers", headers={"X-API-Key": AGENT}).json()
        tiers = {t["name"]: t["models"] for t in answer}
        assert isinstance(decision, Decision) and not decision.fail_open
        assert decision.decision_id and decision.model in tiers[decision.tier]
        assert decision.models[0] == decision.model and decision.model not in decision.fallbacks
        assert decision.requested_model == "gpt-4.1"
        assert decision.ignored_fields == ["temperature"]
        assert set(decision.scores) == set(tiers)
        receipt = router.feedback(decision, success=True, tokens_in=20, tokens_out=7,
                                  cost_usd=0.0031, latency_ms=420.0)
        assert receipt is not None and receipt.status == "stored"
        assert receipt.decision_id == decision.decision_id
        again = router.feedback(decision.decision_id, success=True, tokens_in=20, tokens_out=7,
                                cost_usd=0.0031, latency_ms=420.0)
        assert again is not None and again.status == "duplicate"
    assert spend(live, "run_id")["client-run-1"]["actual_usd"] == pytest.approx(0.0031)


def test_outcome_only_feedback_is_accepted_and_counts_for_spend(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        decision = router.route(prompt="say hello", run_id="client-run-outcome")
        receipt = router.feedback(decision, model_used=decision.model, tokens_in=5,
                                  tokens_out=3, cost_usd=0.0007, latency_ms=95.0,
                                  error="rate_limited", fallback_used=True)
    assert receipt is not None and receipt.status == "stored"
    assert spend(live, "run_id")["client-run-outcome"]["actual_usd"] == pytest.approx(0.0007)


def test_batch_keeps_the_order(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        decisions = router.route_batch([{"prompt": "say hello", "tier": "small"},
                                        {**CHAT, "tier": "large"}])
    assert [d.tier for d in decisions] == ["small", "large"]
    assert [d.reason for d in decisions] == ["forced", "forced"]
    assert len({d.decision_id for d in decisions}) == 2


def test_a_refusal_is_raised_never_failed_open(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT, fail_open_model="gpt-4.1") as router:
        with pytest.raises(RouterRefused) as bad:
            router.route(prompt="hello", quality_target=1.7)
        assert bad.value.status_code == 422 and "quality_target" in str(bad.value)
        with pytest.raises(RouterRefused) as unknown:
            router.feedback("0" * 32, success=True)
        assert unknown.value.status_code == 404


def test_fail_open_on_a_closed_port(closed_url: str, caplog: pytest.LogCaptureFixture) -> None:
    router = RouterClient(closed_url, fail_open_model="gpt-4.1", fail_open_tier="large",
                          fail_open_fallbacks=["claude-3-7-sonnet-20250219"], retries=2,
                          backoff_s=0.01)
    with caplog.at_level(logging.WARNING, logger="tier_router_client"):
        decision = router.route(CHAT, run_id="r")
    assert decision.fail_open and decision.reason == "fail_open"
    assert decision.model == "gpt-4.1" and decision.tier == "large"
    assert decision.fallbacks == ["claude-3-7-sonnet-20250219"] and decision.decision_id is None
    assert decision.detail is not None
    assert "ConnectError" in decision.detail and "after 3 attempts" in decision.detail
    assert any("failing open to gpt-4.1" in r.getMessage() for r in caplog.records)
    # nothing is posted for it (the closed port would raise RouterUnavailable if it were)
    assert router.feedback(decision, success=True) is None
    assert [d.fail_open for d in router.route_batch([{"prompt": "a"}, {"prompt": "b"}])] == [
        True, True]
    with pytest.raises(RouterUnavailable, match="ConnectError"):
        RouterClient(closed_url, retries=0).route(prompt="no default model configured")


@pytest.fixture(scope="module")
def unready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service without its model and with fail_open off: every /route is a 503."""
    work = tmp_path_factory.mktemp("client-unready")
    config = write_config(work / "c.yaml", work / "no-model", fail_open=False)
    server = Server(config, work / "server.log").start()
    yield server
    server.stop()


def test_fail_open_after_retries_on_503(unready: Server) -> None:
    assert httpx.post(f"{unready.url}/route", json={"prompt": "x"}).status_code == 503
    router = RouterClient(unready.url, fail_open_model="gpt-4.1-mini", retries=2, backoff_s=0.01)
    decision = router.route(prompt="hello")
    assert decision.fail_open and decision.model == "gpt-4.1-mini"
    assert decision.detail is not None
    assert "HTTP 503" in decision.detail and "after 3 attempts" in decision.detail


def test_api_key_and_a_far_retry_after(live: Server) -> None:
    with pytest.raises(RouterRefused) as anonymous:
        RouterClient(live.url, fail_open_model="gpt-4.1").route(prompt="hello")
    assert anonymous.value.status_code == 401
    with RouterClient(live.url, api_key=AGENT) as router:
        decision = router.route(prompt="hello", role="keyed")
        assert router.feedback(decision, success=False).status == "stored"  # type: ignore[union-attr]
    limited = RouterClient(live.url, api_key=LIMITED, fail_open_model="gpt-4.1",
                           max_retry_after_s=5)
    limited.route(prompt="one")
    limited.route(prompt="two")
    start = time.monotonic()
    with pytest.raises(RouterRefused) as over:  # Retry-After (30 s) is past max_retry_after_s
        limited.route(prompt="three")
    assert over.value.status_code == 429 and time.monotonic() - start < 2


def test_async_client_routes_reports_and_fails_open(live: Server, closed_url: str) -> None:
    async def main() -> None:
        async with AsyncRouterClient(live.url, api_key=AGENT) as router:
            decisions = await asyncio.gather(*(router.route(CHAT, step=str(i)) for i in range(4)))
            assert len({d.decision_id for d in decisions}) == 4
            receipt = await router.feedback(decisions[0], quality=0.8, tokens_in=20)
            assert receipt is not None and receipt.status == "stored"
            [one] = await router.route_batch([{"prompt": "say hello", "tier": "medium"}])
            assert one.tier == "medium"
        async with AsyncRouterClient(closed_url, fail_open_model="gpt-4.1-nano", retries=1,
                                     backoff_s=0.01) as down:
            decision = await down.route(CHAT)
            assert decision.fail_open and "after 2 attempts" in (decision.detail or "")
            assert await down.feedback(decision, success=True) is None

    asyncio.run(main())


def test_run_outcome_is_reported_once_and_refused_when_different(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        router.route(CHAT, run_id="client-run-outcome")
        first = router.run_outcome("client-run-outcome", success=True, quality=0.9)
        assert first["status"] == "recorded" and first["outcome"]["api_key"] == "agent"
        assert router.run_outcome("client-run-outcome", success=True,
                                  quality=0.9)["status"] == "duplicate"
        with pytest.raises(RouterRefused) as refused:
            router.run_outcome("client-run-outcome", success=False)
        assert refused.value.status_code == 409
        with pytest.raises(ValueError, match="success, quality or both"):
            router.run_outcome("client-run-outcome")

    async def main() -> None:
        async with AsyncRouterClient(live.url, api_key=AGENT) as router:
            await router.route(CHAT, run_id="client-run-async")
            receipt = await router.run_outcome("client-run-async", quality=0.5)
            assert receipt["status"] == "recorded"

    asyncio.run(main())
