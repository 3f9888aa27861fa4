"""The caller's model is a ceiling that holds: a call that its tier and the cheaper ones cannot
serve (a capability, the context) is a 422 naming what it needs and the ceiling, never a
dearer tier. One test per capability, and one for the context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import FakeEmbedder

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGR...", "format": "wav"}}
TEXT = {"type": "text", "text": "say hello"}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]


def narrowed(settings: Settings, **capabilities: list[str]) -> Settings:
    """The shipped tiers with some tiers' capabilities (or a tier's context) replaced."""
    tiers = []
    for tier in settings.tiers:
        update: dict[str, Any] = {}
        if tier.name in capabilities:
            update["capabilities"] = capabilities[tier.name]
        tiers.append(tier.model_copy(update=update))
    return settings.model_copy(update={"tiers": tiers})


def client_for(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        yield c


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    yield from client_for(settings)


def refused(client: TestClient, body: dict[str, Any], needs: str, ceiling: str) -> None:
    r = client.post("/route", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["field"] == "model" and detail["limit"] == ceiling
    assert needs in detail["message"] and f"tier '{ceiling}'" in detail["message"]
    assert repr(body["model"]) in detail["message"]


def test_vision_above_the_ceiling_is_a_422(client: TestClient) -> None:
    """gpt-4.1-mini is tier medium, which (as small) has no vision: never gpt-4.1 instead."""
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": [TEXT, IMAGE]}]}
    refused(client, body, "'vision' capability", "medium")
    served = client.post("/route", json={**body, "model": "gpt-4.1"})
    assert served.status_code == 200 and served.json()["tier"] == "large"
    batch = client.post("/route/batch", json={"requests": [{"prompt": "hi"}, body]})
    assert batch.status_code == 422 and batch.json()["detail"][0]["field"] == "model"


def test_audio_above_the_ceiling_is_a_422(settings: Settings) -> None:
    audible = narrowed(settings, large=["tools", "json", "vision", "audio"])
    body = {"model": "gpt-4.1-nano", "messages": [{"role": "user", "content": [TEXT, AUDIO]}]}
    for client in client_for(audible):
        refused(client, body, "'audio' capability", "small")
        assert client.post("/route", json={**body, "model": "gpt-4.1"}).status_code == 200


def test_json_above_the_ceiling_is_a_422(settings: Settings) -> None:
    body = {"model": "gpt-4.1-nano", "prompt": "list three fruits",
            "response_format": {"type": "json_object"}}
    for client in client_for(narrowed(settings, small=["tools"])):
        refused(client, body, "'json' capability", "small")
        answer = client.post("/route", json={**body, "model": "gpt-4.1-mini"})
        assert answer.status_code == 200 and answer.json()["tier"] == "medium"


def test_tools_above_the_ceiling_is_a_422(settings: Settings) -> None:
    body = {"model": "gpt-4.1-nano", "prompt": "where is shipment 4411", "tools": TOOLS}
    for client in client_for(narrowed(settings, small=["json"])):
        refused(client, body, "'tools' capability", "small")
        answer = client.post("/route", json={**body, "model": "gpt-4.1-mini"})
        assert answer.status_code == 200 and answer.json()["tier"] == "medium"


def test_context_above_the_ceiling_is_a_422(settings: Settings) -> None:
    tiers = [t.model_copy(update={"context_window": 2_000}) if t.name != "large" else t
             for t in settings.tiers]
    body = {"model": "gpt-4.1-mini", "prompt": "word " * 4_000}
    for client in client_for(settings.model_copy(update={"tiers": tiers})):
        refused(client, body, "tokens of context (tier 'medium' holds 2000)", "medium")
        answer = client.post("/route", json={**body, "model": "gpt-4.1"})
        assert answer.status_code == 200 and answer.json()["tier"] == "large"


def test_a_shadow_call_is_never_refused_for_its_ceiling(client: TestClient) -> None:
    body = {"model": "gpt-4.1-mini", "shadow": True,
            "messages": [{"role": "user", "content": [TEXT, IMAGE]}]}
    answer = client.post("/route", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["tier"] == "large" and answer.json()["shadow"] is True


def test_a_refused_call_gives_its_token_charge_back(settings: Settings) -> None:
    """A key with 2,000 tokens a minute sends five ~1,000-token calls its ceiling cannot
    serve: each is refused, none keeps its charge, so a served call still fits."""
    from tests.api.test_limits import AGENT, with_limits

    body = {"model": "gpt-4.1-mini", "max_tokens": 600,
            "messages": [{"role": "user", "content": [TEXT, IMAGE]}]}
    for client in client_for(with_limits(settings)):
        for _ in range(5):
            r = client.post("/route", json=body, headers=AGENT)
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "model", r.text
        served = client.post("/route", json={**body, "model": "gpt-4.1"}, headers=AGENT)
        assert served.status_code == 200, served.text
