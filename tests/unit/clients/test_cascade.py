"""The client's try-cheap-check-escalate loop with a fake router (an httpx MockTransport that
answers /route and /feedback as the service would) and a fake provider whose answers are
scripted per model: synthetic, unit-level. The same loop against the real service is in
tests/clients/test_cascade.py."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

CLIENT_SRC = Path(__file__).resolve().parents[3] / "clients" / "python"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))

from tier_router_client import AsyncRouterClient, RouterClient  # noqa: E402
from tier_router_client.cascade import Answer, Verdict, verdict_of  # noqa: E402

TIERS = ["small", "medium", "large"]


class FakeRouter:
    """Routes to small, escalates one tier up, 409 from large; keeps every body it got."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.tier_of: dict[str, str] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append((request.url.path, body))
        if request.url.path == "/feedback":
            return httpx.Response(201, json={"feedback_id": body["decision_id"],
                                             "decision_id": body["decision_id"],
                                             "status": "stored"})
        tier, attempt = "small", None
        if "escalate_from" in body:
            failed = self.tier_of[body["escalate_from"]]
            if failed == "large":
                return httpx.Response(409, json={"error": "escalation refused",
                                                 "detail": "strongest tier", "limit": "large"})
            tier = TIERS[TIERS.index(failed) + 1]
            attempt = TIERS.index(tier) + 1
        decision_id = f"d{len(self.tier_of)}"
        self.tier_of[decision_id] = tier
        return httpx.Response(200, json={
            "decision_id": decision_id, "tier": tier, "model": f"{tier}-model", "fallbacks": [],
            "reason": "escalation" if attempt else "classifier", "attempt": attempt,
            "escalated_from": body.get("escalate_from")})


def provider(good_from: str) -> Any:
    """A fake LLM: the models of `good_from` and stronger tiers answer JSON, the rest prose."""
    def call(decision: Any) -> Answer:
        ok = TIERS.index(decision.tier) >= TIERS.index(good_from)
        return Answer('{"ok": true}' if ok else "Sure! Here is", {"tokens_out": 7},
                      logprob_mean=-0.1 if ok else -1.7)
    return call


def parses(text: str) -> bool | str:
    try:
        json.loads(text)
    except ValueError:
        return "invalid_json"
    return True


def client(fake: FakeRouter) -> RouterClient:
    return RouterClient("http://router.test", retries=0,
                        http=httpx.Client(transport=httpx.MockTransport(fake)))


def test_a_failed_check_escalates_once_per_tier_until_an_answer_passes() -> None:
    fake = FakeRouter()
    done = client(fake).complete({"prompt": "give json"}, call=provider("medium"), check=parses,
                                 run_id="r1")
    assert done.passed and [d.tier for d in done.tried] == ["small", "medium"]
    assert done.response == '{"ok": true}' and done.escalations == 1
    escalation = [b for p, b in fake.bodies if p == "/route" and "escalate_from" in b][0]
    assert escalation["escalation"] == {"reason": "invalid_json", "logprob_mean": -1.7}
    assert escalation["prompt"] == "give json" and escalation["run_id"] == "r1"
    assert fake.bodies[0][1]["verifiable"] is True  # the router may plan cheap first
    reports = [b for p, b in fake.bodies if p == "/feedback"]
    # the failed call: outcome only (the escalation is its label); the passing one: success
    assert reports == [{"decision_id": "d0", "tokens_out": 7},
                       {"decision_id": "d1", "tokens_out": 7, "success": True,
                        "check_passed": True}]


def test_when_the_strongest_fails_too_the_last_answer_comes_back_unpassed() -> None:
    fake = FakeRouter()
    done = client(fake).complete({"prompt": "x"}, call=provider("large"),
                                 check=lambda text: False)
    assert not done.passed and [d.tier for d in done.tried] == TIERS
    last = [b for p, b in fake.bodies if p == "/feedback"][-1]
    assert last == {"decision_id": "d2", "tokens_out": 7, "success": False,
                    "check_passed": False}


def test_a_check_answers_in_several_shapes() -> None:
    assert verdict_of(None).passed and verdict_of(True).passed
    assert verdict_of(False) == Verdict(False, "check_failed")
    assert verdict_of("tests_failed") == Verdict(False, "tests_failed")
    assert verdict_of("3 tests failed") == Verdict(False, "other", "3 tests failed")
    with pytest.raises(TypeError):
        verdict_of(0.3)


def test_async_with_coroutine_call_and_check() -> None:
    fake = FakeRouter()

    async def main() -> Any:
        router = AsyncRouterClient("http://router.test", retries=0, http=httpx.AsyncClient(
            transport=httpx.MockTransport(fake)))

        async def call(decision: Any) -> Answer:
            return provider("large")(decision)

        async def check(text: str) -> bool | str:
            return parses(text)

        return await router.complete({"prompt": "x"}, call=call, check=check)

    done = asyncio.run(main())
    assert done.passed and [d.tier for d in done.tried] == TIERS and done.escalations == 2
