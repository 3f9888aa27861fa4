"""Who may call what: 401 without a known key, 403 without the scope, 429 over the rate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi import APIRouter
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.api.deps import FeedbackCaller
from router.config import AuthConfig, Settings
from router.guards.auth import KeyRing
from tests.api.test_reload import write_config
from tests.conftest import JSON, LOOPBACK, FakeEmbedder
from tests.unit.guards.test_auth import entry

KEYS = {"router": "key-route", "fb": "key-feedback", "ops": "key-admin", "slow": "key-rate"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keyed(settings: Settings) -> Settings:
    auth = AuthConfig.model_validate({"keys": [
        entry("router", KEYS["router"], ["route"]),
        entry("fb", KEYS["fb"], ["feedback"]),
        entry("ops", KEYS["ops"], ["admin", "route"]),
        entry("slow", KEYS["slow"], ["route"], rate=2),
    ]})
    return settings.model_copy(update={"auth": auth})


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(settings=keyed(settings), embedder_factory=lambda cfg: FakeEmbedder())
    app.state.holder.keyring = KeyRing(clock=clock)
    feedback = APIRouter()  # stands in for the feedback module, which attaches the same alias

    @feedback.post("/feedback-probe")
    async def probe(who: FeedbackCaller) -> dict[str, str]:
        return {"caller": who.name}

    app.include_router(feedback)
    with TestClient(app, client=LOOPBACK) as c:
        yield c


PROMPT = {"prompt": "say hello"}


def test_open_when_no_keys_are_configured(settings: Settings) -> None:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app, client=LOOPBACK) as c:
        assert c.post("/route", json=PROMPT).status_code == 200
        assert c.post("/admin/reload", headers=JSON).status_code == 200
        assert c.post("/route", json=PROMPT, headers={"X-API-Key": "anything"}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"),
        ({"Authorization": "Bearer nope"}, "unknown API key"),
        ({"X-API-Key": "nope"}, "unknown API key"),
        ({"Authorization": f"Bearer {KEYS['router']}", "X-API-Key": "other"},
         "Authorization and X-API-Key carry different keys; send one"),
        ({"Authorization": "Basic a2V5LXJvdXRlOg=="},
         "the Authorization header must read 'Bearer <key>'"),
    ],
)
def test_no_known_key_is_401(client, headers, message) -> None:
    r = client.post("/route", json=PROMPT, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json() == {"error": "unauthorized", "detail": message}
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_either_header_carries_the_key(client) -> None:
    assert client.post("/route", json=PROMPT, headers=bearer("router")).status_code == 200
    r = client.post("/route/batch", json={"requests": [PROMPT]},
                    headers={"X-API-Key": KEYS["router"]})
    assert r.status_code == 200
    assert client.get("/tiers", headers=bearer("router")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "who", "scope"),
    [
        ("post", "/admin/reload", None, "router", "admin"),
        ("get", "/map", None, "router", "admin"),
        ("post", "/admin/map/reset", {"category": "-"}, "router", "admin"),
        ("post", "/route", PROMPT, "fb", "route"),
        ("get", "/tiers", None, "fb", "route"),
        ("post", "/feedback-probe", None, "router", "feedback"),
    ],
)
def test_wrong_scope_is_403_naming_it(client, method, path, body, who, scope) -> None:
    r = client.request(method.upper(), path, json=body, headers={**bearer(who), **JSON})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"
    assert f"API key '{who}' lacks the '{scope}' scope" in r.json()["detail"]


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{not json", {}, 422),  # unparseable JSON: refused before the key is looked at
        (b"\xff\xfe{", {}, 400),  # undecodable
        (b'{"prompt": "hi", "quality_target": 7}', {}, 401),  # schema error, no key
        (b'{"prompt": "hi", "quality_target": 7}', bearer("fb"), 403),  # ... no scope
        (b'{"prompt": "hi", "quality_target": 7}', bearer("router"), 422),  # ... allowed
        (b"", bearer("router"), 422),  # no body
        (b'{"prompt": "hi"}', {"Authorization": "Bearer"}, 401),  # a scheme without a key
        (b'{"prompt": "hi"}', {"Authorization": "bearer " + KEYS["router"]}, 200),
        (b'{"prompt": "hi"}', {"Content-Type": "text/plain", **bearer("router")}, 415),
    ],
)
def test_route_checks_a_call_as_the_declared_dependencies_do(
    client, content: bytes, headers: dict[str, str], status: int
) -> None:
    """POST /route and /route/batch check a call the same way: same status, error and detail."""
    batch = b'{"requests": [' + content + b"]}" if content.startswith(b'{"') else content
    answers = [client.post(path, content=body,
                           headers={"Content-Type": "application/json", **headers})
               for path, body in (("/route", content), ("/route/batch", batch))]
    assert [r.status_code for r in answers] == [status, status], [r.text for r in answers]
    if status != 200:
        assert answers[0].json()["error"] == answers[1].json()["error"]
    if status == 401:
        assert [r.json()["detail"] for r in answers] == [answers[1].json()["detail"]] * 2
        assert [r.headers["WWW-Authenticate"] for r in answers] == ["Bearer", "Bearer"]


def test_each_scope_opens_its_endpoints(client) -> None:
    reloaded = client.post("/admin/reload", headers={**bearer("ops"), **JSON})
    assert reloaded.json()["status"] == "reloaded"
    probe = client.post("/feedback-probe", headers={**bearer("fb"), **JSON})
    assert probe.json() == {"caller": "fb"}
    assert client.post("/route", json=PROMPT, headers=bearer("ops")).status_code == 200


def test_probes_and_metrics_stay_open(client) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_over_the_rate_is_429_with_retry_after(client, clock: Clock) -> None:
    for _ in range(2):
        assert client.post("/route", json=PROMPT, headers=bearer("slow")).status_code == 200
    r = client.post("/route", json=PROMPT, headers=bearer("slow"))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "60"  # 2 in any 60 s: both calls leave the window at 60
    assert "over its limit of 2 requests per minute" in r.json()["detail"]
    assert client.post("/route", json=PROMPT, headers=bearer("router")).status_code == 200
    clock.now += 59.0
    r = client.post("/route", json=PROMPT, headers=bearer("slow"))
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    clock.now += 1.0
    assert client.post("/route", json=PROMPT, headers=bearer("slow")).status_code == 200
    assert 'tier_router_errors_total{kind="rate_limited"} 2.0' in client.get("/metrics").text


def test_a_reload_revokes_a_key(model_dir: Path, tmp_path: Path) -> None:
    keys = [entry("ops", "admin-key", ["admin"]), entry("old", "old-key", ["route"])]
    config = write_config(tmp_path / "c.yaml", model_dir, auth={"keys": keys},
                          store={"url": f"sqlite:///{tmp_path / 'traces.db'}"})
    app = create_app(config, embedder_factory=lambda cfg: FakeEmbedder())
    old = {"Authorization": "Bearer old-key"}
    with TestClient(app, client=LOOPBACK) as c:
        assert c.post("/route", json=PROMPT, headers=old).status_code == 200
        raw = yaml.safe_load(config.read_text())
        raw["auth"]["keys"] = keys[:1]
        config.write_text(yaml.safe_dump(raw))
        r = c.post("/admin/reload", headers={"Authorization": "Bearer admin-key", **JSON})
        assert r.status_code == 200
        assert c.post("/route", json=PROMPT, headers=old).status_code == 401
