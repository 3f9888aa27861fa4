"""The OpenAPI schema tells the truth: configured tiers and limits, and every error answer."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import LimitsConfig, Settings
from tests.api.test_reload import write_config
from tests.conftest import JSON, LOOPBACK, FakeEmbedder


def components(schema: dict) -> dict:
    return schema["components"]["schemas"]


def test_schema_carries_the_configured_tiers_and_limits(settings: Settings) -> None:
    limits = LimitsConfig(max_messages=7, max_tools=3, max_batch=5, max_content_chars=99)
    app = create_app(settings=settings.model_copy(update={"limits": limits}))
    schemas = components(app.openapi())
    route = schemas["RouteRequest"]["properties"]
    assert route["tier"]["anyOf"][0]["enum"] == ["small", "medium", "large"]
    assert route["messages"]["anyOf"][0]["maxItems"] == 7
    assert route["tools"]["anyOf"][0]["maxItems"] == 3
    assert route["prompt"]["anyOf"][0]["maxLength"] == 99
    assert schemas["BatchRouteRequest"]["properties"]["requests"]["maxItems"] == 5
    assert "anyOf" in schemas["RouteRequest"] and "anyOf" in schemas["ChatMessage"]


def test_schema_follows_a_reload(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", model_dir,
                          store={"url": f"sqlite:///{tmp_path / 'traces.db'}"})
    app = create_app(config, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as client:
        before = client.get("/openapi.json").json()
        raw = yaml.safe_load(config.read_text())
        raw["limits"] = {"max_batch": 2}
        config.write_text(yaml.safe_dump(raw))
        assert client.post("/admin/reload", headers=JSON).status_code == 200
        after = client.get("/openapi.json").json()
    batch = "BatchRouteRequest"
    assert components(before)[batch]["properties"]["requests"]["maxItems"] == 256
    assert components(after)[batch]["properties"]["requests"]["maxItems"] == 2


def test_error_answers_are_declared(settings: Settings) -> None:
    paths = create_app(settings=settings).openapi()["paths"]
    assert set(paths["/route"]["post"]["responses"]) == {  # 404, 409: escalate_from's
        "200", "400", "401", "402", "403", "404", "408", "409", "415", "422", "429", "503"}
    assert set(paths["/admin/reload"]["post"]["responses"]) >= {"401", "403", "409", "429"}
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    retry = paths["/route"]["post"]["responses"]["429"]["headers"]["Retry-After"]
    assert retry["schema"] == {"type": "integer"}


def test_an_unparseable_body_is_400_in_the_error_shape(settings: Settings) -> None:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as client:
        json_type = {"Content-Type": "application/json"}
        r = client.post("/route", content=b"\xff\xfe{", headers=json_type)
        assert r.status_code == 400
        assert r.json() == {"error": "bad request", "detail": "There was an error parsing the body"}
        r = client.get("/nowhere")
        assert r.status_code == 404 and r.json()["error"] == "not found"


def test_every_route_request_field_says_what_it_does(settings: Settings) -> None:
    """Every field an agent may send to /route, and of the messages, parts and tools in it, has a
    description in the schema (the API's own documentation at /docs)."""
    schemas = create_app(settings=settings).openapi()["components"]["schemas"]
    missing = [f"{name}.{field}"
               for name in ("RouteRequest", "ChatMessage", "ContentPart", "ToolSchema", "ToolCall")
               for field, spec in schemas[name]["properties"].items()
               if not spec.get("description")]
    assert missing == []
    route = schemas["RouteRequest"]["properties"]
    for field, limit in (("messages", "512"), ("prompt", "1,000,000"), ("tools", "256"),
                         ("max_completion_tokens", "10,000,000"), ("run_id", "1-256"),
                         ("task", "64"), ("max_cost_usd", ">= 0")):
        assert limit in route[field]["description"], field
