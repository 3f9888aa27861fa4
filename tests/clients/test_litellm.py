"""The LiteLLM SDK helper against the real service, offline: LiteLLM's own `mock_response`
answers (or fails) each model, its local cost map prices the call, and the outcome the
service stored is read back from its trace store."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

litellm = pytest.importorskip("litellm", reason="the client's integrations are not installed")

from tier_router_client import AsyncRouterClient, RouterClient  # noqa: E402
from tier_router_client.litellm import AllModelsFailed, acompletion, completion  # noqa: E402

from tests.clients.conftest import AGENT, decision_ids, outcome_row  # noqa: E402
from tests.integration.service import Server  # noqa: E402

ASK = [{"role": "user", "content": "what is two plus two"}]


def deployments(**mocks: str) -> litellm.Router:
    """A LiteLLM Router whose deployments answer with (or raise) the given mock per model."""
    return litellm.Router(num_retries=0, model_list=[
        {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "sk-none",
                                                "mock_response": mock}}
        for name, mock in mocks.items()])


def test_route_call_and_report_the_outcome(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        call = completion(router, messages=ASK, mock_response="Four.", run_id="ll-run",
                          role="calc", temperature=0)
    assert call.response.choices[0].message.content == "Four."
    assert call.model_used == call.decision.model and call.receipt is not None
    row = outcome_row(live, call.decision.decision_id or "")
    usage = call.response.usage
    assert row["quality"] is None  # outcome-only: LiteLLM knows cost, not correctness
    assert (row["model_used"], row["tokens_in"], row["tokens_out"]) == (
        call.model_used, usage.prompt_tokens, usage.completion_tokens)
    expected = litellm.completion_cost(completion_response=call.response)
    assert expected > 0 and row["cost_usd"] == pytest.approx(expected)
    assert row["cost_estimated"] == 0 and row["latency_ms"] > 0 and row["error"] is None


def test_falls_back_along_the_decision(live: Server) -> None:
    llm = deployments(**{"gpt-4.1": "litellm.RateLimitError",
                         "claude-3-7-sonnet-20250219": "From the fallback."})
    with RouterClient(live.url, api_key=AGENT) as router:
        call = completion(router, llm=llm, messages=ASK, tier="large")
    assert call.decision.models == ["gpt-4.1", "claude-3-7-sonnet-20250219"]
    assert call.model_used == "claude-3-7-sonnet-20250219"
    assert call.response.choices[0].message.content == "From the fallback."
    row = outcome_row(live, call.decision.decision_id or "")
    assert row["fallback_used"] == 1 and row["model_used"] == "claude-3-7-sonnet-20250219"
    assert row["error"] is None  # the fallback answered; the failed link is an attempt
    [link] = json.loads(row["extra"])["attempts"]
    assert (link["model"], link["error"]) == ("gpt-4.1", "rate_limited")


def test_every_model_failing_is_reported_then_raised(live: Server) -> None:
    llm = deployments(**{"gpt-4.1": "litellm.InternalServerError",
                         "claude-3-7-sonnet-20250219": "litellm.RateLimitError"})
    with RouterClient(live.url, api_key=AGENT) as router, pytest.raises(AllModelsFailed) as failed:
        completion(router, llm=llm, messages=ASK, tier="large", step="all-fail")
    assert len(failed.value.errors) == 2
    assert "InternalServerError" in failed.value.errors[0]
    [decision_id] = decision_ids(live, step="all-fail")  # the call's own decision
    row = outcome_row(live, decision_id)
    assert row["quality"] is None and row["fallback_used"] == 1
    assert (row["model_used"], row["error"]) == ("claude-3-7-sonnet-20250219", "rate_limited")
    [link] = json.loads(row["extra"])["attempts"]
    assert (link["model"], link["error"]) == ("gpt-4.1", "server_error")


def test_streaming_is_refused_with_the_reason(live: Server) -> None:
    with pytest.raises(ValueError, match="'stream' parameter must be false"):
        completion(RouterClient(live.url, api_key=AGENT), messages=ASK, stream=True)


def test_async_and_fail_open(live: Server, closed_url: str) -> None:
    async def main() -> None:
        async with AsyncRouterClient(live.url, api_key=AGENT) as router:
            call = await acompletion(router, messages=ASK, mock_response="Async four.",
                                     run_id="ll-async")
            assert call.receipt is not None and call.receipt.status == "stored"
        async with AsyncRouterClient(closed_url, retries=0, fail_open_model="gpt-4.1-mini") as down:
            call = await acompletion(down, messages=ASK, mock_response="Still answered.")
            assert call.decision.fail_open and call.model_used == "gpt-4.1-mini"
            assert call.receipt is None
            assert call.response.choices[0].message.content == "Still answered."

    asyncio.run(main())


def test_the_example_runs_offline(live: Server) -> None:
    import os
    import subprocess
    import sys

    from tests.clients.conftest import AGENT, CLIENT_SRC

    env = {**os.environ, "TIER_ROUTER_URL": live.url, "TIER_ROUTER_API_KEY": AGENT,
           "MOCK_RESPONSE": "The parcel is late.",
           "PYTHONPATH": str(CLIENT_SRC)}
    done = subprocess.run([sys.executable, str(CLIENT_SRC / "examples" / "litellm_sdk.py")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    model, reason, status, *answer = done.stdout.split()
    assert status == "stored" and " ".join(answer) == "The parcel is late."


def test_a_run_reports_its_outcome_when_it_ends(live: Server) -> None:
    from tier_router_client.litellm import reporting_run

    with RouterClient(live.url, api_key=AGENT) as router:
        with reporting_run(router, "ll-run-ok") as run:
            completion(router, messages=ASK, mock_response="Four.", run_id=run.run_id)
            completion(router, messages=ASK, mock_response="Four.", run_id=run.run_id)
        assert run.receipt is not None and run.receipt["status"] == "recorded"
        with pytest.raises(AllModelsFailed), reporting_run(router, "ll-run-failed") as failed:
            completion(router, messages=ASK, mock_response="litellm.RateLimitError",
                       run_id=failed.run_id)
        with reporting_run(router, "ll-run-graded") as graded:
            completion(router, messages=ASK, mock_response="Five.", run_id=graded.run_id)
            graded.quality = 0.2  # the agent's own grade of the run
        with reporting_run(router, "ll-run-never-called"):
            pass  # no call: the service has no such run, the report's 404 is only logged
    ledgers = {r: httpx.get(f"{live.url}/runs/{r}", headers={"X-API-Key": AGENT}).json()
               for r in ("ll-run-ok", "ll-run-failed", "ll-run-graded")}
    assert ledgers["ll-run-ok"]["calls"] == 2
    assert {r: (g["outcome"]["success"], g["outcome"]["quality"]) for r, g in ledgers.items()} == {
        "ll-run-ok": (True, None), "ll-run-failed": (False, None),
        "ll-run-graded": (None, 0.2)}

    async def main() -> dict:
        async with AsyncRouterClient(live.url, api_key=AGENT) as arouter:
            async with areporting_run(arouter, "ll-run-async") as arun:
                await acompletion(arouter, messages=ASK, mock_response="Four.",
                                  run_id=arun.run_id)
            return arun.receipt or {}

    from tier_router_client.litellm import areporting_run

    assert asyncio.run(main())["outcome"]["success"] is True
