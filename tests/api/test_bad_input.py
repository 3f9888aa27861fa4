"""Every kind of bad input gets a clear 4xx naming the field and, where there is one, the limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import LimitsConfig, Settings
from tests.conftest import FakeEmbedder


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    limits = LimitsConfig(max_body_bytes=20_000, max_messages=5, max_content_chars=1000,
                          max_tools=2, max_batch=3)
    app = create_app(settings=settings.model_copy(update={"limits": limits}),
                     embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        yield c


def _detail(r) -> dict:
    return r.json()["detail"][0]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"messages": []}, "messages", "at least 1"),
        ({}, "body", "exactly one of"),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "body", "exactly one"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "'user'"),
        ({"messages": [{"role": "user", "content": [{"type": "hologram", "data": "x"}]}]},
         "messages.0.content", "has type 'hologram'"),
        ({"messages": [{"role": "user"}]}, "messages.0", "needs 'content'"),
        ({"prompt": "x", "quality_target": 1.7}, "quality_target", "less than or equal to 1"),
        ({"prompt": "x", "quality_target": -0.1}, "quality_target", "greater than or equal"),
        ({"prompt": "x", "max_cost_usd": -1}, "max_cost_usd", "greater than or equal to 0"),
        ({"prompt": "x", "max_cost_usd": True}, "max_cost_usd", "valid number"),
        ({"prompt": "x", "quality_target": True}, "quality_target", "valid number"),
        ({"prompt": ""}, "prompt", "at least 1 character"),
        ({"prompt": "x", "max_cost_usdd": 0.1}, "max_cost_usdd", "did you mean 'max_cost_usd'"),
        ({"prompt": "x", "quality_targt": 0.9}, "quality_targt", "did you mean 'quality_target'"),
        ({"prompt": "x", "dryrun": True}, "dryrun", "did you mean 'dry_run'"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"prompt": "x", "max_tokens": True}, "max_tokens", "not a boolean"),
        ({"prompt": "x", "stream": 0.0}, "stream", "valid boolean"),
        ({"prompt": "x", "latency_sensitive": 1}, "latency_sensitive", "valid boolean"),
        ({"prompt": "x", "max_completion_tokens": 10**8}, "max_completion_tokens",
         "less than or equal to 10000000"),
    ],
)
def test_schema_errors_are_422_with_field(client, body, field, words) -> None:
    r = client.post("/route", json=body)
    assert r.status_code == 422, r.text
    detail = _detail(r)
    assert detail["field"] == field, detail
    assert words in detail["message"], detail


def test_limits_from_config_name_field_and_limit(client) -> None:
    many = {"messages": [{"role": "user", "content": "hi"}] * 6}
    r = client.post("/route", json=many)
    assert r.status_code == 422 and _detail(r) | {} == {
        "field": "messages", "limit": 5,
        "message": "messages: 6 messages exceed the limit of 5"}
    r = client.post("/route", json={"prompt": "x" * 1001})
    assert r.status_code == 422 and _detail(r)["field"] == "prompt"
    assert _detail(r)["limit"] == 1000
    tools = [{"type": "function", "function": {"name": str(i)}} for i in range(3)]
    r = client.post("/route", json={"prompt": "x", "tools": tools})
    assert r.status_code == 422 and _detail(r)["field"] == "tools" and _detail(r)["limit"] == 2


def test_unknown_forced_tier(client) -> None:
    r = client.post("/route", json={"prompt": "x", "tier": "huge"})
    assert r.status_code == 422
    assert _detail(r)["field"] == "tier" and "unknown tier 'huge'" in _detail(r)["message"]


def test_body_over_size_limit_is_422_naming_the_limit(client) -> None:
    r = client.post("/route", json={"prompt": "x" * 30_000})
    assert r.status_code == 422
    assert _detail(r) == {"field": "body", "limit": 20_000,
                          "message": "request body exceeds the limit of 20000 bytes"}


def test_body_over_limit_without_content_length(client) -> None:
    def chunks():
        yield b'{"prompt": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}'

    r = client.post("/route", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert _detail(r)["field"] == "body" and _detail(r)["limit"] == 20_000


def test_batch_over_limit_and_errors_name_the_request(client) -> None:
    r = client.post("/route/batch", json={"requests": [{"prompt": "x"}] * 4})
    assert r.status_code == 422 and _detail(r)["field"] == "requests" and _detail(r)["limit"] == 3
    r = client.post("/route/batch", json={"requests": [{"prompt": "x"}, {"prompt": "y",
                                                                      "tier": "nope"}]})
    assert r.status_code == 422 and _detail(r)["field"] == "requests.1.tier"
    r = client.post("/route/batch", json={"requests": [{"prompt": "x", "quality_target": 3}]})
    assert r.status_code == 422 and _detail(r)["field"] == "requests.0.quality_target"


def test_not_json(client) -> None:
    r = client.post("/route", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "JSON" in _detail(r)["message"]


def test_bad_input_is_counted_and_service_keeps_answering(client) -> None:
    client.post("/route", json={"prompt": "x", "quality_target": 9})
    assert client.post("/route", json={"prompt": "say hello"}).status_code == 200
    assert 'tier_router_errors_total{kind="validation"} 1.0' in client.get("/metrics").text


def test_invalid_json_names_the_position_as_a_position(client) -> None:
    r = client.post("/route", content=b'{"prompt": "hi",, }',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    detail = _detail(r)
    assert detail["field"] == "body", detail
    assert detail["message"].startswith("the body is not valid JSON at character 16"), detail


def test_feedback_counts_over_64_bits_are_a_422_not_a_500(client) -> None:
    decision = client.post("/route", json={"prompt": "hi"}).json()
    r = client.post("/feedback", json={"decision_id": decision["decision_id"], "success": True,
                                       "tokens_in": 2**64})
    assert r.status_code == 422, r.text
    assert _detail(r)["field"] == "tokens_in" and _detail(r)["limit"] == 2**53 - 1


def test_feedback_cost_is_bounded_so_spend_sums_stay_finite(client) -> None:
    decision = client.post("/route", json={"prompt": "hi"}).json()
    r = client.post("/feedback", json={"decision_id": decision["decision_id"], "success": True,
                                       "cost_usd": 1e308})
    assert r.status_code == 422, r.text
    assert _detail(r)["field"] == "cost_usd" and _detail(r)["limit"] == 1e9


@pytest.mark.parametrize(("field", "near"), [
    ("sucess", "success"), ("qualty", "quality"), ("cost_uds", "cost_usd"),
    ("tokens_ot", "tokens_out"), ("model_usd", "model_used"),
])
def test_a_feedback_typo_gets_the_field_it_resembles(client, field, near) -> None:
    decision = client.post("/route", json={"prompt": "hi"}).json()
    r = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                       "tokens_in": 3, field: 1})
    assert r.status_code == 422, r.text
    assert _detail(r) == {"field": field, "limit": near,
                          "message": f"unknown field {field!r}: did you mean {near!r}?"}
    stored = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                            "success": True})
    assert stored.status_code == 201, stored.text  # the refused body stored nothing


def test_an_unknown_feedback_field_far_from_any_lists_the_known_ones(client) -> None:
    r = client.post("/feedback", json={"decision_id": "d" * 32, "success": True, "mood": "ok"})
    assert r.status_code == 422, r.text
    detail = _detail(r)
    assert detail["field"] == "mood" and "limit" not in detail
    assert detail["message"].startswith("unknown field 'mood' (known fields: decision_id, success")
