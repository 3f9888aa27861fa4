"""The LiteLLM proxy hook (tier_router_client.litellm_proxy), driven as the proxy drives it:
pre-call hook, the call through LiteLLM (its mock responses), post-call hook; against the real
tier-router service. The proxy itself, end to end, is in test_litellm_proxy_e2e.py (slow)."""

from __future__ import annotations

import asyncio

import pytest

litellm = pytest.importorskip("litellm", reason="the client's integrations are not installed")

from tier_router_client.litellm_proxy import TierRouterHook, ids_from_user  # noqa: E402

from tests.clients.conftest import AGENT, decision_ids, outcome_row  # noqa: E402
from tests.integration.service import Server  # noqa: E402

ASK = [{"role": "user", "content": "what is two plus two"}]
SERVED = ["gpt-4.1-nano", "gpt-4.1-mini", "gpt-4.1", "claude-3-7-sonnet-20250219"]


def stored_ids(server: Server, decision_id: str) -> tuple:
    import sqlite3
    with sqlite3.connect(server.config.parent / "traces.db") as db:
        return db.execute("SELECT run_id, role, step, user_id FROM decisions "
                          "WHERE decision_id = ?", (decision_id,)).fetchone()


def test_auto_is_routed_called_and_reported(live: Server) -> None:
    hook = TierRouterHook(live.url, api_key=AGENT, served_models=SERVED)

    async def main() -> dict:
        data = {"model": "auto", "messages": ASK, "tier": "large",
                "metadata": {"run_id": "px-run", "role": "planner", "step": "2",
                             "user_api_key_hash": "not for the router"}}
        data = await hook.async_pre_call_hook(None, None, data, "completion")
        response = await litellm.acompletion(model=data["model"], messages=ASK,
                                             mock_response="Four.")
        await hook.async_post_call_success_hook(data, None, response)
        return data

    data = asyncio.run(main())
    routed = data["metadata"]["tier_router"]
    assert data["model"] == routed["model"] in SERVED
    assert set(data.get("fallbacks", [])) <= set(SERVED)
    assert stored_ids(live, routed["decision_id"]) == ("px-run", "planner", "2", None)
    row = outcome_row(live, routed["decision_id"])
    assert row["quality"] is None and row["model_used"] == data["model"]
    assert row["tokens_in"] > 0 and row["cost_usd"] > 0 and row["cost_estimated"] == 0


def test_ids_from_the_user_field_and_failures_reported(live: Server) -> None:
    assert ids_from_user("run=r1, role=critic;step=5") == {
        "run_id": "r1", "role": "critic", "step": "5"}
    assert ids_from_user("alice") == {}
    hook = TierRouterHook(live.url, api_key=AGENT, served_models=SERVED)

    async def main() -> str:
        data = {"model": "auto", "messages": ASK, "user": "run_id=px-user;role=critic;step=5"}
        data = await hook.async_pre_call_hook(None, None, data, "completion")
        await hook.async_post_call_failure_hook(data, RuntimeError("upstream 503"), None)
        return data["metadata"]["tier_router"]["decision_id"]

    decision_id = asyncio.run(main())
    assert stored_ids(live, decision_id) == ("px-user", "critic", "5", None)
    row = outcome_row(live, decision_id)
    assert row["error"] == "other" and row["quality"] is None  # no HTTP status, no known kind


def test_other_models_pass_untouched(live: Server) -> None:
    hook = TierRouterHook(live.url, api_key=AGENT, served_models=SERVED)
    before = len(decision_ids(live, step="untouched"))
    data = {"model": "gpt-4.1", "messages": ASK, "metadata": {"step": "untouched"}}
    out = asyncio.run(hook.async_pre_call_hook(None, None, dict(data), "completion"))
    assert out == data and len(decision_ids(live, step="untouched")) == before


def test_unreachable_router_leaves_auto_to_its_deployment_and_a_refusal_is_the_answer(
        live: Server, closed_url: str) -> None:
    from fastapi import HTTPException

    data = {"model": "auto", "messages": ASK}
    down = TierRouterHook(closed_url, served_models=SERVED)
    assert asyncio.run(down.async_pre_call_hook(None, None, dict(data), "completion")) == data
    opened = TierRouterHook(closed_url, fail_open_model="gpt-4.1-mini", served_models=SERVED)
    out = asyncio.run(opened.async_pre_call_hook(None, None, dict(data), "completion"))
    assert out["model"] == "gpt-4.1-mini" and out["metadata"]["tier_router"]["fail_open"]
    hook = TierRouterHook(live.url, api_key=AGENT, served_models=SERVED)
    bad = {**data, "metadata": {"quality_target": 1.5}}
    with pytest.raises(HTTPException) as refused:
        asyncio.run(hook.async_pre_call_hook(None, None, bad, "completion"))
    assert refused.value.status_code == 422 and "quality_target" in str(refused.value.detail)
