"""The learned map through the app: cold calls go to the strongest tier, a step moves down once
its category has evidence, labelled feedback teaches once per decision, the map is named in
router_version, inspected and reset by admins, kept in the store across restarts and replicas,
and a dry run is never explored.

Labels are synthetic (the fake embedder and made-up outcomes): this checks the loop's plumbing
and the rule's safety, not routing quality.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.config import ApiKeyConfig, AuthConfig, Settings
from router.guards.auth import hash_key
from tests.api.test_feedback import client_for
from tests.conftest import JSON


def shipped(settings: Settings, **learning: Any) -> Settings:
    """The test settings with the shipped learning config and target (the fixture lets the
    synthetic model decide cold calls at 0.9 for the plumbing tests)."""
    config = settings.learning.model_copy(update={"prior_confidence": None, **learning})
    return settings.model_copy(update={"learning": config, "quality_target": 0.95})


def route(client: TestClient, prompt: str = "say hello", **body: Any) -> dict[str, Any]:
    headers = body.pop("headers", {})
    r = client.post("/route", json={"prompt": prompt, **body}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def teach(client: TestClient, n: int, task: str = "greet",
          quality: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """`n` outcomes per tier in `task` (the tier forced, so each tier gets its share)."""
    quality = quality or {"small": 1.0, "medium": 1.0, "large": 1.0}
    decisions = []
    for i in range(n):
        for tier, q in quality.items():
            d = route(client, f"hello there number {i}", task=task, tier=tier)
            r = client.post("/feedback", json={"decision_id": d["decision_id"], "quality": q})
            assert r.status_code == 201, r.text
            decisions.append(d)
    return decisions


def test_a_step_goes_to_the_strongest_tier_cold_and_moves_down_with_evidence(
    settings: Settings,
) -> None:
    with client_for(shipped(settings, min_outcomes=30)) as c:
        cold = route(c, "hello there", task="greet")
        assert (cold["tier"], cold["reason"]) == ("large", "classifier")
        assert "no category has 30 outcomes" in cold["detail"]
        assert cold["router_version"] == "synthetic-test"
        # every tier answers greetings well: enough outcomes for the category's bound alone
        # (no per-call score shift) to pass 0.95
        teach(c, 150, "greet")
        teach(c, 60, "solve", {"small": 0.0, "medium": 0.2, "large": 1.0})
        c.app.state.holder.loop.reload_learning()  # what the loop does after new outcomes
        greet = route(c, "hello there", task="greet")
        solve = route(c, "hello there", task="solve")
        assert greet["tier"] == "small" and greet["detail"].startswith("task greet: small ")
        assert solve["tier"] == "large"
        assert greet["router_version"] == "synthetic-test+s630"
        state = c.get("/admin/learning").json()
        assert state["revision"] == 630 and state["tiers"]["small"]["outcomes"] == 210
        assert {e["category"] for e in state["top"]} >= {"-", "-/task:greet", "-/task:solve"}


def test_one_decision_counts_once_and_traces_without_decision_do_not_teach(
    settings: Settings,
) -> None:
    with client_for(settings) as c:
        (d, *_) = teach(c, 1, quality={"small": 1.0})
        again = c.post("/feedback", json={"decision_id": d["decision_id"], "quality": 1.0})
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        trace = c.post("/feedback", json={"prompt": "prove it", "model": "gpt-4.1-nano",
                                          "quality": 1.0})
        assert trace.status_code == 201
        assert c.get("/admin/learning").json()["revision"] == 1


def test_reset_forgets_and_a_restart_rebuilds_the_map_from_the_store(
    settings: Settings,
) -> None:
    with client_for(settings) as c:
        teach(c, 4)
        c.app.state.holder.loop.reload_learning()
        learned = route(c, "hello there", task="greet")
    with client_for(settings) as c:  # a restart: the map is read back from the store
        assert c.get("/admin/learning").json()["revision"] == 12
        again = route(c, "hello there", task="greet")
        assert again["router_version"] == learned["router_version"] == "synthetic-test+s12"
        assert again["scores"] == pytest.approx(learned["scores"], abs=1e-6)
        reset = c.post("/admin/learning/reset", headers=JSON).json()
        assert reset["revision"] == 0 and reset["categories"] == 0
        assert route(c, "hello there", task="greet")["router_version"] == "synthetic-test"
    with client_for(settings) as c:  # the reset is in the store too
        assert c.get("/admin/learning").json()["revision"] == 0


def test_only_admins_inspect_or_reset_and_only_feedback_keys_teach(settings: Settings) -> None:
    keys = {"router": ["route"], "agent": ["route", "feedback"], "ops": ["admin"]}
    auth = AuthConfig(keys=[ApiKeyConfig(name=n, sha256=hash_key(f"k-{n}"), scopes=s)
                            for n, s in keys.items()])
    with client_for(settings.model_copy(update={"auth": auth})) as c:
        d = route(c, headers={"X-API-Key": "k-agent"})  # its outcome is the agent key's
        body = {"decision_id": d["decision_id"], "quality": 1.0}
        assert c.post("/feedback", json=body, headers={"X-API-Key": "k-router"}).status_code \
            == 403
        assert c.get("/admin/learning", headers={"X-API-Key": "k-agent"}).status_code == 403
        assert c.post("/admin/learning/reset",
                      headers={"X-API-Key": "k-agent", **JSON}).status_code == 403
        assert c.get("/admin/learning", headers={"X-API-Key": "k-ops"}).json()["revision"] == 0
        assert c.post("/feedback", json=body, headers={"X-API-Key": "k-agent"}).status_code \
            == 201
        state = c.get("/admin/learning", headers={"X-API-Key": "k-ops"}).json()
        assert state["revision"] == 1
        assert any(e["category"] == "agent" for e in state["top"])  # the key's namespace


def test_learning_off_keeps_the_cold_rule_and_the_model_scores(settings: Settings) -> None:
    off = shipped(settings, enabled=False)
    with client_for(off) as c:
        before = route(c, "hello there", task="greet")
        teach(c, 10)
        after = route(c, "hello there", task="greet")
        assert after["scores"] == before["scores"] and after["router_version"] == "synthetic-test"
        assert after["tier"] == "large"  # no learning, no category: the strongest tier
        assert c.get("/admin/learning").json() == {"enabled": False}


def test_cold_tier_saves_from_the_first_call(settings: Settings) -> None:
    with client_for(shipped(settings, cold_tier="medium")) as c:
        d = route(c, "hello there", task="greet")
        assert d["tier"] == "medium" and "cold_tier 'medium'" in d["detail"]


def test_exploration_is_logged_and_never_touches_a_dry_run(settings: Settings) -> None:
    explored = shipped(settings).model_copy(update={"exploration_rate": 0.5,
                                                    "exploration_seed": 3})
    with client_for(explored) as c:
        dry = [route(c, f"hello there {i}", dry_run=True) for i in range(60)]
        assert all(d["reason"] != "explore" and d["tier"] == "large" for d in dry)
        live = [route(c, f"hello there {i}") for i in range(200)]
        tried = [d for d in live if d["reason"] == "explore"]
        # cold: large, a cheaper tier tried as often as it might pass, at most the rate in all
        assert tried and all(d["tier"] != "large" and 0 < d["propensity"] <= 0.5 for d in tried)
        kept = [d for d in live if d["reason"] != "explore"]
        assert all(d["tier"] == "large" and 0.5 <= d["propensity"] <= 1.0 for d in kept)
        planned = [route(c, task="plan") for _ in range(20)]  # min_tier large: nowhere to go
        assert all(d["tier"] == "large" and d["propensity"] == 1.0 for d in planned)
        forced = [route(c, tier="medium") for _ in range(10)]
        assert all(d["reason"] == "forced" and d["propensity"] == 1.0 for d in forced)


@pytest.mark.parametrize("rate", [0.1, 0.0])
def test_a_category_below_the_target_sends_its_allowance_as_a_logged_draw(
    settings: Settings, rate: float,
) -> None:
    """`solve`: medium answers 60% as well as large, small never; at 0.95 a share of its calls
    goes to medium (reason classifier, the share in the detail, the propensity logged) and a
    dry run takes large; with exploration off too (the allowance is the map's, not
    exploration's)."""
    explored = shipped(settings).model_copy(update={"exploration_rate": rate,
                                                    "exploration_seed": 5})
    with client_for(explored) as c:
        teach(c, 60, "solve", {"small": 0.0, "medium": 0.6, "large": 1.0})
        c.app.state.holder.loop.reload_learning()
        dry = [route(c, f"solve {i}", task="solve", dry_run=True) for i in range(20)]
        assert all(d["tier"] == "large" and d["reason"] == "classifier" for d in dry)
        assert "of calls to medium (its 90% bound" in dry[0]["detail"]
        assert dry[0]["detail"].endswith("keep 0.95")
        live = [route(c, f"solve {i}", task="solve") for i in range(200)]
        shared = [d for d in live if d["reason"] == "classifier" and d["tier"] == "medium"]
        kept = [d for d in live if d["reason"] == "classifier" and d["tier"] == "large"]
        assert shared and kept
        share = shared[0]["propensity"]
        assert 0 < share < 0.5 and all(d["propensity"] == share for d in shared)
        assert all(d["propensity"] == pytest.approx(1 - share, abs=0.1) for d in kept)
        assert abs(len(shared) / len(live) - share) < 0.1  # drawn as often as logged


@pytest.mark.parametrize(("field", "value"), [
    ("min_outcomes", 0), ("prior_strength", -1), ("bound", 1.0), ("half_life_days", 1),
    ("max_categories", 0), ("refresh_s", 0), ("max_weight", 0.5), ("explore_cost", 2),
    ("category_fields", ["user"]), ("prior_confidence", 1.5),
])
def test_bad_learning_config_names_the_field_and_the_limit(field: str, value: Any) -> None:
    from router.config import LearningConfig, load_settings
    from router.errors import ConfigError

    with pytest.raises(ConfigError, match=f"learning.{field}"):
        load_settings(None, learning={field: value})
    with pytest.raises(ValueError, match=field):
        LearningConfig(**{field: value})


def test_a_cold_tier_must_be_a_tier() -> None:
    from router.config import load_settings
    from router.errors import ConfigError

    with pytest.raises(ConfigError, match="cold_tier 'huge'"):
        load_settings(None, learning={"cold_tier": "huge"})


def test_two_replicas_on_one_store_converge_at_their_refresh(settings: Settings) -> None:
    with client_for(settings) as a, client_for(settings) as b:
        teach(a, 3)
        b.app.state.holder.loop.reload_learning()  # what b's refresh thread does
        a.app.state.holder.loop.reload_learning()
        ra = route(a, "hello there", task="greet")
        rb = route(b, "hello there", task="greet")
        assert ra["router_version"] == rb["router_version"] == "synthetic-test+s9"
        assert ra["scores"] == pytest.approx(rb["scores"], abs=1e-9)
        a.post("/admin/learning/reset", headers=JSON)
        b.app.state.holder.loop.reload_learning()
        assert b.get("/admin/learning").json()["revision"] == 0  # the reset reached b
