"""Try cheap, check, escalate against the real service: the client's `complete` and the OpenAI
SDK helper's `check=` (the LLM side a scripted httpx transport: no network). The service's
store says what happened: the escalation with its reason and log-probability, the failed
answer's outcome labelled a failure once, the passing one a success."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the client's integrations are not installed")

from tier_router_client import RouterClient  # noqa: E402
from tier_router_client.cascade import Answer  # noqa: E402
from tier_router_client.openai import create  # noqa: E402

from tests.clients.conftest import AGENT, outcome_row  # noqa: E402
from tests.integration.service import Server  # noqa: E402

SMALL_MODELS = ("gpt-4.1-nano", "gemini-2.0-flash-001")


def escalations(server: Server) -> list[dict[str, Any]]:
    with sqlite3.connect(server.config.parent / "traces.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM escalations")]


def parses(text: str) -> bool | str:
    try:
        json.loads(text)
    except ValueError:
        return "invalid_json"
    return True


def llm(request: httpx.Request) -> httpx.Response:
    """An OpenAI-compatible LLM: small models answer prose (unsure), the others JSON."""
    body = json.loads(request.content)
    small = body["model"] in SMALL_MODELS
    tokens = [{"token": "x", "logprob": -2.0 if small else -0.05, "bytes": None,
               "top_logprobs": []}] * 4
    logprobs = {"content": tokens} if body.get("logprobs") else None
    return httpx.Response(200, json={
        "id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                     "message": {"role": "assistant",
                                 "content": "Sure, here:" if small else '{"a": 1}'}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36}})


def test_the_openai_helper_escalates_a_failed_check_with_its_confidence(live: Server) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url="http://llm.test/v1", max_retries=0,
                           http_client=httpx.Client(transport=httpx.MockTransport(llm)))
    with RouterClient(live.url, api_key=AGENT) as router:
        call = create(router, client, messages=[{"role": "user", "content": "json please"}],
                      tier="small", run_id="cascade-run", logprobs=True,
                      check=lambda r: parses(r.choices[0].message.content))
    assert call.passed and [d.tier for d in call.tried] == ["small", "medium"]
    first, second = call.tried
    assert second.attempt == 2 and second.escalated_from == first.decision_id
    assert call.model_used == "gpt-4.1-mini"
    [row] = [e for e in escalations(live) if e["from_decision_id"] == first.decision_id]
    assert (row["reason"], row["logprob_mean"], row["to_decision_id"]) == (
        "invalid_json", -2.0, second.decision_id)
    failed, passed = outcome_row(live, first.decision_id or ""), outcome_row(
        live, second.decision_id or "")
    assert (failed["quality"], failed["tokens_out"]) == (0.0, 6)  # a failure, with its tokens
    assert (passed["quality"], passed["tokens_out"]) == (1.0, 6)
    ledger = httpx.get(f"{live.url}/runs/cascade-run", headers={"X-API-Key": AGENT}).json()
    assert ledger["escalations"]["escalations"] == 1 and ledger["escalations"]["wasted_usd"] > 0


def test_complete_stops_at_the_strongest_tier_and_reports_the_failure(live: Server) -> None:
    with RouterClient(live.url, api_key=AGENT) as router:
        done = router.complete({"prompt": "never good enough"}, tier="medium",
                               call=lambda d: Answer(f"answer of {d.model}", {"tokens_out": 3}),
                               check=lambda text: "rejected")
    assert not done.passed and [d.tier for d in done.tried] == ["medium", "large"]
    assert outcome_row(live, done.decision.decision_id or "")["quality"] == 0.0
    assert done.receipts[-1] is not None and done.receipts[-1].status == "stored"


def test_the_litellm_helper_takes_the_same_check(live: Server) -> None:
    litellm = pytest.importorskip("litellm", reason="the client's integrations are not installed")
    from tier_router_client.litellm import completion

    answers = {"gpt-4.1-nano": "prose", "gemini-2.0-flash-001": "prose",
               "gpt-4.1-mini": '{"b": 2}', "mistral-medium-latest": '{"b": 2}'}
    llm = litellm.Router(num_retries=0, model_list=[
        {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "sk-none",
                                                "mock_response": text}}
        for name, text in answers.items()])
    with RouterClient(live.url, api_key=AGENT) as router:
        call = completion(router, llm=llm, messages=[{"role": "user", "content": "json"}],
                          tier="small", check=lambda r: parses(r.choices[0].message.content))
    assert call.passed and [d.tier for d in call.tried] == ["small", "medium"]
    assert outcome_row(live, call.tried[0].decision_id or "")["quality"] == 0.0
