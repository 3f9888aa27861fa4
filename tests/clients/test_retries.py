"""The retry rule, unit-tested on a scripted transport (a real service does not answer 503
then 200, or 429 with a short Retry-After, on demand)."""

from __future__ import annotations

import time

import httpx
import pytest
from tier_router_client import RouterClient, RouterRefused
from tier_router_client._core import Options, retry_delay

DECISION = {"decision_id": "d1", "tier": "small", "model": "m", "fallbacks": ["n"],
            "scores": {"small": 0.9}, "reason": "classifier", "estimated_tokens_in": 3,
            "estimated_cost_usd": 0.0, "router_version": "v", "a_field_from_a_newer_server": 1}


def scripted(*answers: httpx.Response) -> tuple[RouterClient, list[float]]:
    """A client whose transport plays `answers` in order and records when each came."""
    seen: list[float] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        return queue.pop(0)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return RouterClient("http://router", http=http, retries=2, backoff_s=0.01,
                        fail_open_model="fallback-model"), seen


def test_5xx_is_retried_then_answered() -> None:
    client, seen = scripted(httpx.Response(502), httpx.Response(503), httpx.Response(200,
                                                                                 json=DECISION))
    decision = client.route(prompt="x")
    assert len(seen) == 3 and decision.decision_id == "d1" and not decision.fail_open


def test_retry_after_is_honoured() -> None:
    client, seen = scripted(httpx.Response(429, headers={"Retry-After": "0.3"}),
                            httpx.Response(200, json=DECISION))
    assert client.route(prompt="x").model == "m"
    assert seen[1] - seen[0] >= 0.3


def test_a_far_retry_after_and_a_4xx_are_final() -> None:
    client, seen = scripted(httpx.Response(429, headers={"Retry-After": "60"}, json={}))
    with pytest.raises(RouterRefused):
        client.route(prompt="x")
    client, seen = scripted(httpx.Response(422, json={"detail": [{"field": "prompt"}]}))
    with pytest.raises(RouterRefused, match="prompt"):
        client.route(prompt="x")
    assert len(seen) == 1


def test_5xx_every_time_fails_open() -> None:
    client, seen = scripted(*[httpx.Response(500, json={"detail": "boom"})] * 3)
    decision = client.route(prompt="x")
    assert decision.fail_open and decision.model == "fallback-model" and len(seen) == 3
    assert "HTTP 500 boom" in (decision.detail or "")


def test_backoff_doubles_up_to_its_cap() -> None:
    options = Options(retries=5, backoff_s=0.5, max_backoff_s=1.5)
    assert [retry_delay(options, a, None) for a in range(6)] == [0.5, 1.0, 1.5, 1.5, 1.5, None]
    with pytest.raises(ValueError, match="The 'retries' parameter must be >= 0. Got -1"):
        Options(retries=-1)
