"""The bodies agents already hold: OpenAI chat completions (and Responses parts) and Anthropic
Messages are routed as they are; unused fields are listed, typos in router fields refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import FakeEmbedder

CHAT_COMPLETIONS = {  # what an OpenAI SDK call sends, unchanged
    "model": "gpt-4.1", "temperature": 0.2, "top_p": 1, "stream": True, "max_tokens": 300,
    "tool_choice": "auto", "parallel_tool_calls": False, "seed": 7,
    "messages": [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is shipment 4411?"},
    ],
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        yield c


def post(client: TestClient, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = client.post("/route", json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_a_chat_completions_body_is_routed_as_it_is(client: TestClient) -> None:
    answer = post(client, CHAT_COMPLETIONS)
    assert answer["requested_model"] == "gpt-4.1"
    assert answer["ignored_fields"] == ["parallel_tool_calls", "seed", "temperature", "top_p"]
    batch = client.post("/route/batch", json={"requests": [CHAT_COMPLETIONS] * 2})
    assert batch.status_code == 200, batch.text
    assert all(d["requested_model"] == "gpt-4.1" for d in batch.json()["decisions"])


def test_max_tokens_is_the_output_estimate(client: TestClient) -> None:
    short = post(client, {"prompt": "say hello", "tier": "large", "max_tokens": 10})
    long = post(client, {"prompt": "say hello", "tier": "large", "max_completion_tokens": 4000})
    assert long["estimated_cost_usd"] > short["estimated_cost_usd"] * 10


def test_the_requested_model_is_a_ceiling_and_auto_is_none(client: TestClient) -> None:
    hard = {"prompt": "prove the theorem about primes", "quality_target": 1.0}
    free = post(client, hard)
    assert free["tier"] != "small"
    capped = post(client, {**hard, "model": "gpt-4.1-nano"})
    assert (capped["tier"], capped["reason"]) == ("small", "ceiling")
    assert "never a dearer tier" in capped["detail"]
    assert post(client, {**hard, "model": "small"})["tier"] == "small"  # a tier's name too
    assert post(client, {**hard, "model": "auto"})["tier"] == free["tier"]
    assert post(client, {**hard, "model": "some-new-model"})["tier"] == free["tier"]


def test_image_parts_count_and_need_a_vision_tier(client: TestClient) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    text = {"type": "text", "text": "say hello"}
    plain = post(client, {"messages": [{"role": "user", "content": [text]}]})
    seen = post(client, {"messages": [{"role": "user", "content": [text, image]}]})
    assert seen["estimated_tokens_in"] >= plain["estimated_tokens_in"] + 765
    assert seen["tier"] == "large"  # the shipped config's only tier with 'vision'
    assert seen["scores"] == plain["scores"]  # the classifier reads the text parts only
    assert "vision" in seen["detail"]


def test_a_capability_no_tier_has_is_a_422_naming_it(client: TestClient) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "UklGR...", "format": "wav"}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}]}
    r = client.post("/route", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["field"] == "messages.0.content.1" and detail["limit"] == "audio"
    assert "'audio' capability" in detail["message"]


def test_responses_and_anthropic_bodies(client: TestClient) -> None:
    responses = {"messages": [{"role": "user", "content": [
        {"type": "input_text", "text": "say hello"}]}]}
    assert post(client, responses)["scores"] == post(client, {"prompt": "say hello"})["scores"]
    anthropic = {
        "model": "claude-3-7-sonnet-20250219", "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Where is 4411?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"id": "4411"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "held at customs"}]},
        ],
        "tools": [{"name": "lookup", "description": "find", "input_schema": {}}],
    }
    answer = post(client, anthropic)
    assert answer["requested_model"] == "claude-3-7-sonnet-20250219"
    assert "ignored_fields" not in answer  # every field of it was used


def test_a_misspelt_router_field_is_refused_in_a_batch_too(client: TestClient) -> None:
    r = client.post("/route/batch", json={"requests": [
        {"prompt": "a"}, {"prompt": "b", "max_cost_uds": 0.01}]})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["field"] == "requests.1.max_cost_uds" and detail["limit"] == "max_cost_usd"


def test_metadata_carries_attribution_for_callers_that_cannot_add_fields() -> None:
    from router.schemas import RouteRequest

    request = RouteRequest.model_validate(
        {"prompt": "x", "metadata": {"run_id": "r-9", "role": "planner", "step": 3}})
    assert (request.run_id, request.role, request.step) == ("r-9", "planner", None)
    assert RouteRequest.model_validate(
        {"prompt": "x", "role": "own", "metadata": {"role": "meta"}}).role == "own"


def test_dry_run_is_answered_but_neither_stored_nor_counted(client: TestClient) -> None:
    dry = post(client, {"prompt": "say hello", "dry_run": True, "role": "eval"})
    wet = post(client, {"prompt": "say hello", "role": "eval"})
    r = client.post("/feedback", json={"decision_id": dry["decision_id"], "success": True})
    assert r.status_code == 404, r.text  # never stored, so no outcome can attach to it
    rows = client.get("/spend", params={"by": "role"}).json()["rows"]
    assert [(row["key"], row["calls"]) for row in rows] == [("eval", 1)]
    assert client.post("/feedback", json={"decision_id": wet["decision_id"],
                                          "success": True}).status_code == 201


@pytest.mark.parametrize(("name", "near"), [
    ("max_cost_uds", "max_cost_usd"), ("quality_targt", "quality_target"), ("dryrun", "dry_run"),
    ("teir", "tier"), ("rol", "role"),  # short fields: one edit (a swap counts one)
    ("None", None), ("seed", None), ("colour", None), ("temprature", None),  # not ours
])
def test_which_unknown_names_count_as_typos(name: str, near: str | None) -> None:
    from router.schemas import misspelt_field

    assert misspelt_field(name) == near
