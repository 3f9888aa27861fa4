"""The online learning state through the app: moved by labelled feedback only, once per decision,
named in router_version, inspected and reset by admins, rebuilt from the store on restart.

Labels are synthetic (the fake embedder and made-up outcomes): this checks the loop's plumbing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.config import ApiKeyConfig, AuthConfig, Settings
from router.guards.auth import hash_key
from tests.api.test_feedback import client_for
from tests.conftest import JSON


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as c:
        yield c


def route(client: TestClient, prompt: str = "say hello", **headers: str) -> dict[str, Any]:
    r = client.post("/route", json={"prompt": prompt}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def teach(client: TestClient, n: int, quality: float = 1.0) -> list[dict[str, Any]]:
    decisions = []
    for i in range(n):
        d = route(client, f"prove the theorem number {i % 3}")
        r = client.post("/feedback", json={"decision_id": d["decision_id"], "quality": quality,
                                           "model_used": "gpt-4.1-nano"})
        assert r.status_code == 201, r.text
        decisions.append(d)
    return decisions


def test_labelled_feedback_moves_the_scores_and_router_version_says_so(
    client: TestClient,
) -> None:
    before = route(client, "prove the theorem number 1")
    assert before["router_version"] == "synthetic-test"  # prior alone: the model's version
    teach(client, 30, quality=1.0)  # small (via model_used) always succeeded on these
    after = route(client, "prove the theorem number 1")
    assert after["router_version"] == "synthetic-test+s30"
    assert after["scores"]["small"] > before["scores"]["small"] + 0.2
    state = client.get("/admin/learning").json()
    assert state["revision"] == 30 and state["tiers"]["small"]["outcomes"] == 30
    assert state["tiers"]["small"]["realised"] == 1.0


def test_one_decision_counts_once_and_traces_without_decision_do_not_teach(
    client: TestClient,
) -> None:
    (d,) = teach(client, 1)
    again = client.post("/feedback", json={"decision_id": d["decision_id"], "quality": 1.0,
                                           "model_used": "gpt-4.1-nano"})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    trace = client.post("/feedback", json={"prompt": "prove it", "model": "gpt-4.1-nano",
                                           "quality": 1.0})
    assert trace.status_code == 201
    assert client.get("/admin/learning").json()["revision"] == 1


def test_reset_forgets_and_a_restart_rebuilds_the_state_from_the_store(
    settings: Settings,
) -> None:
    with client_for(settings) as c:
        teach(c, 12)
        c.app.state.holder.loop.reload_learning()  # what the refresh thread does every refresh_s
        learned = route(c, "prove the theorem number 2")
    with client_for(settings) as c:  # a restart: the state is read back from the store
        assert c.get("/admin/learning").json()["revision"] == 12
        again = route(c, "prove the theorem number 2")
        assert again["router_version"] == learned["router_version"] == "synthetic-test+s12"
        assert again["scores"] == pytest.approx(learned["scores"], abs=1e-6)
        reset = c.post("/admin/learning/reset", headers=JSON).json()
        assert reset["revision"] == 0 and reset["size"] == 0
        assert route(c, "prove the theorem number 2")["router_version"] == "synthetic-test"
    with client_for(settings) as c:  # the reset is in the store too
        assert c.get("/admin/learning").json()["revision"] == 0


def test_only_admins_inspect_or_reset_and_only_feedback_keys_teach(settings: Settings) -> None:
    keys = {"router": ["route"], "agent": ["route", "feedback"], "ops": ["admin"]}
    auth = AuthConfig(keys=[ApiKeyConfig(name=n, sha256=hash_key(f"k-{n}"), scopes=s)
                            for n, s in keys.items()])
    with client_for(settings.model_copy(update={"auth": auth})) as c:
        d = route(c, **{"X-API-Key": "k-agent"})  # its outcome is the agent key's to post
        body = {"decision_id": d["decision_id"], "quality": 1.0}
        assert c.post("/feedback", json=body, headers={"X-API-Key": "k-router"}).status_code \
            == 403
        assert c.get("/admin/learning", headers={"X-API-Key": "k-agent"}).status_code == 403
        assert c.post("/admin/learning/reset",
                      headers={"X-API-Key": "k-agent", **JSON}).status_code == 403
        assert c.get("/admin/learning", headers={"X-API-Key": "k-ops"}).json()["revision"] == 0
        assert c.post("/feedback", json=body, headers={"X-API-Key": "k-agent"}).status_code \
            == 201
        assert c.get("/admin/learning", headers={"X-API-Key": "k-ops"}).json()["revision"] == 1


def test_learning_off_leaves_the_model_scores(settings: Settings) -> None:
    off = settings.model_copy(update={"learning": settings.learning.model_copy(
        update={"enabled": False})})
    with client_for(off) as c:
        before = route(c, "prove the theorem number 1")
        teach(c, 10)
        after = route(c, "prove the theorem number 1")
        assert after["scores"] == before["scores"] and after["router_version"] == "synthetic-test"
        assert c.get("/admin/learning").json() == {"enabled": False}


@pytest.mark.parametrize(("field", "value"), [
    ("capacity", 8), ("neighbours", 0), ("bandwidth", 0), ("prior_strength", -1),
    ("explore_floor", 1.5), ("refresh_s", 0), ("max_weight", 0.5),
])
def test_bad_learning_config_names_the_field_and_the_limit(field: str, value: float) -> None:
    from router.config import LearningConfig, load_settings
    from router.errors import ConfigError

    with pytest.raises(ConfigError, match=f"learning.{field}"):
        load_settings(None, learning={field: value})
    with pytest.raises(ValueError, match=field):
        LearningConfig(**{field: value})


def test_two_replicas_on_one_store_converge_at_their_refresh(settings: Settings) -> None:
    with client_for(settings) as a, client_for(settings) as b:
        teach(a, 9)
        assert b.get("/admin/learning").json()["revision"] == 0  # until b refreshes
        b.app.state.holder.loop.reload_learning()  # what b's refresh thread does
        a.app.state.holder.loop.reload_learning()
        ra, rb = route(a, "prove the theorem number 0"), route(b, "prove the theorem number 0")
        assert ra["router_version"] == rb["router_version"] == "synthetic-test+s9"
        assert ra["scores"] == pytest.approx(rb["scores"], abs=1e-9)
        a.post("/admin/learning/reset", headers=JSON)
        b.app.state.holder.loop.reload_learning()
        assert b.get("/admin/learning").json()["revision"] == 0  # the reset reached b
