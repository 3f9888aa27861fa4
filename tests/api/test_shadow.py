"""Shadow mode through the real app: a decision asked for and not followed. The caller keeps its
own model (no ceiling, no exploration, no budget refusal); its outcome teaches the tier of the
model it used, never the router's pick; /spend and `tier-router spend` say what following the
router would have saved. Prompts and outcomes are synthetic (the fake embedder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from router.cli.main import main
from router.config import BudgetConfig, Settings
from tests.api.test_feedback import client_for, route

HARD = "prove the theorem about primes"


def test_a_shadow_call_says_what_it_would_choose_without_the_callers_ceiling(
    settings: Settings,
) -> None:
    with client_for(settings) as c:
        followed = route(c, prompt=HARD, model="gpt-4.1-nano")  # a ceiling when followed
        assert (followed["tier"], followed["reason"], followed["shadow"]) == (
            "small", "ceiling", False)
    with client_for(settings.model_copy(update={"exploration_rate": 0.9,
                                                "exploration_seed": 1})) as c:
        answers = [route(c, prompt=HARD, model="gpt-4.1-nano", shadow=True) for _ in range(20)]
    assert {a["reason"] for a in answers} == {"classifier"}  # never explored (0.9 otherwise)
    assert all(a["shadow"] and a["tier"] != "small" for a in answers)  # no ceiling
    small = settings.tier("small")
    expected = small.estimate_cost(answers[0]["estimated_tokens_in"],
                                   settings.expected_output_tokens)
    assert answers[0]["followed_cost_usd"] == pytest.approx(expected)
    assert answers[0]["estimated_cost_usd"] > answers[0]["followed_cost_usd"]


def _shadow_traffic(c: TestClient, n: int, model: str = "gpt-4.1-nano",
                    quality: float = 1.0) -> list[dict[str, Any]]:
    answers = []
    for i in range(n):
        a = route(c, prompt=f"{HARD} number {i % 3}", model=model, shadow=True, role="solver")
        r = c.post("/feedback", json={"decision_id": a["decision_id"], "quality": quality,
                                      "tokens_in": 100, "tokens_out": 50})
        assert r.status_code == 201, r.text
        answers.append(a)
    return answers


def test_outcomes_teach_the_followed_models_tier_and_spend_says_what_it_would_save(
    settings: Settings,
) -> None:
    with client_for(settings) as c:
        answers = _shadow_traffic(c, 12, model="gpt-4.1-mini")  # medium followed
        state = c.get("/admin/learning").json()
        assert state["tiers"]["medium"]["outcomes"] == 12  # the model actually used
        assert all(state["tiers"][t]["outcomes"] == 0 for t in ("small", "large"))
        spend = c.get("/spend", params={"by": "tier"}).json()
    assert {r["key"] for r in spend["rows"]} == {"medium"}  # what was really spent
    medium = settings.tier("medium")
    followed = 12 * medium.estimate_cost(100, 50)
    routed = sum(settings.tier(a["tier"]).estimate_cost(100, 50) for a in answers)
    shadow = spend["shadow"]
    assert shadow["calls"] == shadow["with_outcome"] == 12
    assert shadow["followed_usd"] == pytest.approx(followed)
    assert shadow["routed_usd"] == pytest.approx(routed)
    assert shadow["saved_usd"] == pytest.approx(followed - routed)
    assert shadow["followed_quality"] == 1.0
    picks = [a["tier"] for a in answers]
    assert shadow["same_tier_share"] == pytest.approx(picks.count("medium") / 12)


def test_a_model_no_tier_serves_is_spent_but_teaches_nothing(settings: Settings) -> None:
    with client_for(settings) as c:
        a = route(c, prompt=HARD, model="my-own-finetune", shadow=True)
        assert a.get("followed_cost_usd") is None and a["requested_model"] == "my-own-finetune"
        r = c.post("/feedback", json={"decision_id": a["decision_id"], "quality": 0.0,
                                      "cost_usd": 0.01})
        assert r.status_code == 201, r.text
        assert c.get("/admin/learning").json()["revision"] == 0
        rows = c.get("/spend", params={"by": "model"}).json()["rows"]
    assert [(r["key"], r["actual_usd"]) for r in rows] == [("my-own-finetune", 0.01)]


def test_a_spent_budget_refuses_followed_calls_only_and_the_config_can_default_to_shadow(
    settings: Settings,
) -> None:
    budget = BudgetConfig(name="solver-daily", role="solver", limit_usd=0.001)
    shadowed = settings.model_copy(update={"budgets": [budget], "shadow": True})
    with client_for(shadowed) as c:
        _shadow_traffic(c, 3, model="gpt-4.1")  # large followed: the budget is spent
        assert route(c, prompt="hi", role="solver")["shadow"]  # the config's default
        refused = c.post("/route", json={"prompt": "hi", "role": "solver", "shadow": False})
        assert refused.status_code == 402 and "solver-daily" in refused.text


def test_the_cli_prints_what_following_would_save(settings: Settings, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with client_for(settings) as c:
        _shadow_traffic(c, 4, model="gpt-4.1")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    assert main(["spend", "--config", str(config)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("shadow: 4 calls, 4 with an outcome") and "would save" in line


def test_shadow_must_be_a_boolean(settings: Settings) -> None:
    with client_for(settings) as c:
        r = c.post("/route", json={"prompt": "hi", "shadow": "yes"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "shadow"
