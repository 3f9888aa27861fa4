"""Hostile requests a web page or a careless caller can send, and what each one gets: the
request checks (router/api/checks.py), the body's nesting limit, strict numbers, /metrics and
/docs with keys, sanitised metric labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import AuthConfig, Settings
from tests.conftest import JSON, LOOPBACK, FakeEmbedder
from tests.unit.guards.test_auth import entry

POSTS = ["/route", "/route/batch", "/feedback", "/admin/reload", "/admin/learning/reset"]
PROMPT = {"prompt": "say hello"}


def app_for(settings: Settings, **auth: Any) -> Any:
    if auth:
        settings = settings.model_copy(update={"auth": AuthConfig(**auth)})
    return create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())


@pytest.fixture
def open_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(app_for(settings), client=LOOPBACK) as c:
        yield c


def keyed(**switches: Any) -> dict[str, Any]:
    return {"keys": [entry("agent", "k-agent", ["route", "feedback"]),
                     entry("ops", "k-ops", ["admin"]),
                     entry("scraper", "k-scrape", ["metrics"])], **switches}


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_every_post_without_the_json_content_type_is_415(
    open_client: TestClient, path: str, content_type: str | None
) -> None:
    """What a page can send cross-site without a CORS preflight: refused before any handler."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    reset_before = open_client.get("/admin/learning").json()["reset_at"]
    r = open_client.post(path, content=b'{"prompt": "x"}' if content_type else None,
                         headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["detail"][0]["field"] == "headers.content-type"
    assert open_client.get("/admin/learning").json()["reset_at"] == reset_before


def test_json_with_a_charset_is_json(open_client: TestClient) -> None:
    r = open_client.post("/route", content=b'{"prompt": "x"}',
                         headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


def test_a_bodyless_post_takes_no_body_or_an_empty_object(open_client: TestClient) -> None:
    assert open_client.post("/admin/reload", headers=JSON).status_code == 200
    assert open_client.post("/admin/reload", json={}).status_code == 200
    r = open_client.post("/admin/learning/reset", json={"everything": True})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:9999"])
def test_an_open_service_refuses_cross_site_requests(
    open_client: TestClient, origin: str
) -> None:
    """A page elsewhere cannot post a trace, reset learning or even read the tiers."""
    for method, path, body in [("POST", "/feedback", {"prompt": "p", "model": "gpt-4.1",
                                                     "quality": 1.0, "cost_usd": 1_000_000}),
                               ("POST", "/admin/learning/reset", {}), ("GET", "/tiers", None)]:
        r = open_client.request(method, path, json=body, headers={"Origin": origin})
        assert r.status_code == 403, (path, r.text)
        assert r.json()["detail"][0]["field"] == "headers.origin"
    r = open_client.get("/tiers", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert open_client.get("/admin/learning").json()["revision"] == 0


def test_the_same_origin_is_not_cross_site(open_client: TestClient) -> None:
    """The docs page served by the router itself posts with its own origin."""
    r = open_client.post("/route", json=PROMPT, headers={"Origin": "http://testserver",
                                                         "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200, r.text


def test_keys_make_the_origin_check_the_keys_job(settings: Settings) -> None:
    with TestClient(app_for(settings, **keyed())) as c:
        r = c.post("/route", json=PROMPT, headers={"Origin": "https://app.example",
                                                   "X-API-Key": "k-agent"})
    assert r.status_code == 200, r.text


def test_open_admin_answers_only_loopback_clients(settings: Settings) -> None:
    with TestClient(app_for(settings), client=("203.0.113.7", 4000)) as c:
        assert c.post("/route", json=PROMPT).status_code == 200
        for method, path in [("GET", "/admin/learning"), ("POST", "/admin/reload")]:
            r = c.request(method, path, headers=JSON)
            assert r.status_code == 403, r.text
            assert r.json()["detail"][0]["field"] == "auth.allow_open_admin"
    with TestClient(app_for(settings, allow_open_admin=True), client=("203.0.113.7", 4000)) as c:
        assert c.post("/admin/reload", headers=JSON).status_code == 200


def test_docs_follow_their_switch_when_keys_are_configured(settings: Settings) -> None:
    with TestClient(app_for(settings, **keyed())) as c:
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/docs").status_code == 200
    with TestClient(app_for(settings, **keyed(public_docs=False))) as c:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert c.get(path).status_code == 404, path
        assert c.get("/healthz").status_code == 200


def test_metrics_need_the_metrics_scope_unless_public(settings: Settings) -> None:
    with TestClient(app_for(settings, **keyed())) as c:
        assert c.get("/metrics").status_code == 200  # public_metrics: true by default
    with TestClient(app_for(settings, **keyed(public_metrics=False))) as c:
        assert c.get("/metrics").status_code == 401
        r = c.get("/metrics", headers={"X-API-Key": "k-agent"})
        assert r.status_code == 403 and "'metrics' scope" in r.json()["detail"]
        assert c.get("/metrics", headers={"Authorization": "Bearer k-scrape"}).status_code == 200


def test_metric_labels_carry_no_raw_caller_strings(open_client: TestClient) -> None:
    for role in ["plan\u0000ner", "\U0001F600" * 3, "x" * 256]:
        assert open_client.post("/route", json={**PROMPT, "role": role}).status_code == 200
    lines = [line for line in open_client.get("/metrics").text.splitlines()
             if line.startswith("tier_router_estimated_cost_usd_total{")]
    labels = [line.split('role="', 1)[1].split('"}', 1)[0] for line in lines]
    assert "plan?ner" in labels and "???" in labels
    assert max(len(label) for label in labels) == 64
    assert all(32 <= ord(ch) < 127 for label in labels for ch in label)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [65, 300, 100_000])
@pytest.mark.parametrize("path", POSTS)
def test_deeply_nested_json_is_the_same_400_everywhere(
    open_client: TestClient, path: str, depth: int
) -> None:
    """Deeper than limits.max_json_depth (64): 400 naming the limit, never a 500, wherever the
    nesting sits (the whole body, or inside a field a schema would keep)."""
    decision = open_client.post("/route", json=PROMPT).json()["decision_id"]
    deep = nested(depth)
    bodies = [deep, f'{{"prompt": "p", "model": "gpt-4.1", "quality": 1, "x": {deep}}}',
              f'{{"decision_id": "{decision}", "success": true, "x": {deep}}}',
              f'{{"prompt": "p", "metadata": {{"x": {deep}}}}}']
    for body in bodies:
        r = open_client.post(path, content=body, headers=JSON)
        assert r.status_code == 400, (path, body[:60], r.text)
        assert r.json() == {"error": "bad request", "detail": [{
            "field": "body", "limit": 64, "message": "the JSON body nests arrays and objects "
            "deeper than the limit of 64 levels (limits.max_json_depth)"}]}


def test_brackets_inside_strings_are_text(open_client: TestClient) -> None:
    r = open_client.post("/route", json={"prompt": "[" * 5000 + '"\\' + "{" * 100})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "p", "model": "gpt-4.1", "quality": "0.5"}, "quality"),
        ({"prompt": "p", "model": "gpt-4.1", "quality": True}, "quality"),
        ({"prompt": "p", "model": "gpt-4.1", "quality": 1, "cost_usd": "0.01"}, "cost_usd"),
        ({"prompt": "p", "model": "gpt-4.1", "quality": 1, "tokens_in": "12"}, "tokens_in"),
        ({"prompt": "p", "model": "gpt-4.1", "success": "true"}, "success"),
        ({"decision_id": "d", "quality": "1"}, "quality"),
        ({"decision_id": "d", "tokens_out": "40"}, "tokens_out"),
        ({"decision_id": "d", "latency_ms": "12.5"}, "latency_ms"),
        ({"decision_id": "d", "error": "timeout", "attempts": [
            {"model": "gpt-4.1", "error": "timeout", "latency_ms": "9"}]}, "attempts.0.latency_ms"),
    ],
)
def test_feedback_numbers_are_json_numbers(open_client: TestClient, body: dict[str, Any],
                                           field: str) -> None:
    r = open_client.post("/feedback", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"prompt": "p", "max_cost_usd": Infinity}', "max_cost_usd"),
        ('{"prompt": "p", "max_cost_usd": NaN}', "max_cost_usd"),
        ('{"prompt": "p", "max_run_cost_usd": Infinity, "run_id": "r"}', "max_run_cost_usd"),
        ('{"prompt": "p", "quality_target": "0.5"}', "quality_target"),
        ('{"prompt": "p", "max_tokens": "100"}', "max_tokens"),
        ('{"prompt": "p", "model": "gpt-4.1", "quality": 1, "cost_usd": Infinity}', "cost_usd"),
    ],
)
def test_infinities_and_strings_are_refused_naming_the_field(
    open_client: TestClient, text: str, field: str
) -> None:
    path = "/feedback" if '"quality"' in text else "/route"
    r = open_client.post(path, content=text, headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field
