"""The OpenAI SDK helper: the real `openai` client on a scripted transport for the LLM side
(`httpx.MockTransport`: no network), the real tier-router service for routing and feedback."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the client's integrations are not installed")

from tier_router_client import AsyncRouterClient, RouterClient  # noqa: E402
from tier_router_client.openai import AllModelsFailed, acreate, create  # noqa: E402

from router.config import load_settings  # noqa: E402
from tests.clients.conftest import AGENT, outcome_row  # noqa: E402
from tests.integration.service import Server  # noqa: E402

ASK = [{"role": "user", "content": "say hello"}]


def answer(request: httpx.Request) -> httpx.Response:
    """An OpenAI-compatible LLM: gpt-4.1 is rate limited, every other model answers."""
    model = json.loads(request.content)["model"]
    if model == "gpt-4.1":
        return httpx.Response(429, json={"error": {"message": "slow down", "type": "rate"}})
    return httpx.Response(200, json={
        "id": "c1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": f"hello from {model}"}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 50, "total_tokens": 1250,
                  "prompt_tokens_details": {"cached_tokens": 1000}}})


def sync_llm() -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url="http://llm.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(answer)))


def test_route_call_report(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        call = create(router, sync_llm(), messages=ASK, run_id="oa-run", temperature=0.1)
    assert call.response.choices[0].message.content == f"hello from {call.decision.model}"
    row = outcome_row(live, call.decision.decision_id or "")
    assert (row["tokens_in"], row["tokens_out"], row["quality"]) == (1200, 50, None)
    # no price from the SDK: the service prices the tokens, the cached ones at the cached price
    tier = load_settings(live.config).tier(call.decision.tier or "")
    assert row["cost_estimated"] == 1
    assert row["cost_usd"] == pytest.approx(tier.estimate_cost(1200, 50, cached_tokens_in=1000))


def test_falls_back_and_reports_the_error(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        call = create(router, sync_llm(), messages=ASK, tier="large")
    assert call.model_used == "claude-3-7-sonnet-20250219"
    row = outcome_row(live, call.decision.decision_id or "")
    assert row["fallback_used"] == 1 and row["error"] is None  # the fallback answered
    assert json.loads(row["extra"])["attempts"][0]["error"] == "rate_limited"  # 429


def test_every_model_failing_raises(live: Server) -> None:
    down = openai.OpenAI(api_key="sk-test", base_url="http://llm.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(
                             lambda request: httpx.Response(503, json={"error": "down"}))))
    with RouterClient(live.url, api_key=AGENT) as router, pytest.raises(AllModelsFailed) as failed:
        create(router, down, messages=ASK, tier="large")
    assert [e.split(":")[0] for e in failed.value.errors] == [
        "gpt-4.1", "claude-3-7-sonnet-20250219"]


def test_async(live: Server) -> None:
    async def main() -> None:
        llm = openai.AsyncOpenAI(api_key="sk-test", base_url="http://llm.test/v1", max_retries=0,
                                 http_client=httpx.AsyncClient(
                                     transport=httpx.MockTransport(answer)))
        async with AsyncRouterClient(live.url, api_key=AGENT) as router:
            call = await acreate(router, llm, messages=ASK, tier="medium")
        assert call.model_used == "gpt-4.1-mini" and call.receipt is not None

    asyncio.run(main())


def test_a_run_reports_its_outcome_when_it_ends(live: Server) -> None:
    from tier_router_client.openai import areporting_run, reporting_run

    with RouterClient(live.url, api_key=AGENT) as router:
        with reporting_run(router, "oa-run-ok") as run:
            create(router, sync_llm(), messages=ASK, run_id=run.run_id)
        assert run.receipt is not None
        assert (run.receipt["status"], run.receipt["outcome"]["success"]) == ("recorded", True)
        with pytest.raises(RuntimeError, match="the agent gave up"), \
                reporting_run(router, "oa-run-failed") as failed:
            create(router, sync_llm(), messages=ASK, run_id=failed.run_id)
            raise RuntimeError("the agent gave up")
        assert failed.receipt is not None and failed.receipt["outcome"]["success"] is False

    async def main() -> dict:
        llm = openai.AsyncOpenAI(api_key="sk-test", base_url="http://llm.test/v1", max_retries=0,
                                 http_client=httpx.AsyncClient(
                                     transport=httpx.MockTransport(answer)))
        async with AsyncRouterClient(live.url, api_key=AGENT) as arouter:
            async with areporting_run(arouter, "oa-run-async") as arun:
                await acreate(arouter, llm, messages=ASK, run_id=arun.run_id)
                arun.success, arun.quality = True, 0.75
            return arun.receipt or {}

    outcome = asyncio.run(main())["outcome"]
    assert (outcome["success"], outcome["quality"], outcome["api_key"]) == (True, 0.75, "agent")
