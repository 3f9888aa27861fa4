"""The health step of the policy alone: a snapshot of model health in, the chain out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from router.config import Settings, TaskRule, TierConfig
from router.decision.choice import CallFacts, TierTable
from router.decision.health_view import HealthView, ModelState, health_step
from router.decision.learned_map import Verdict
from router.decision.pipeline import steps
from router.decision.policy import ExplorationDraw
from router.errors import NoHealthyModel

TIERS = [
    TierConfig(name="small", models=["s1", "s2"], input_price_per_m=0.1, output_price_per_m=0.4,
               context_window=8_000),
    TierConfig(name="medium", models=["m1"], input_price_per_m=1.0, output_price_per_m=4.0,
               context_window=32_000),
    TierConfig(name="large", models=["l1", "l2"], input_price_per_m=10.0, output_price_per_m=30.0,
               context_window=200_000),
]
SETTINGS = Settings(tiers=TIERS, safe_tier="large", exploration_rate=0.0,
                    task_rules={"plan": TaskRule(min_tier="medium"),
                                "fixed": TaskRule(tier="small")})
TABLE = TierTable.of(SETTINGS)
SMALL = {"small": 0.9, "medium": 0.9, "large": 0.9}  # the classifier picks small
OPEN = ModelState("open", calls=5, errors=5, retry_at=1_012.0, why="5 of 5 calls failed")
HALF = ModelState("half_open", calls=5, errors=5, retry_at=990.0, why="5 of 5 calls failed")


def facts(**kw) -> CallFacts:
    return CallFacts(**{"tokens_in": 1000, "expected_tokens_out": 100, **kw})


def view(probe: float = 0.99, **states: ModelState) -> HealthView:
    return HealthView(states, at=1_000.0, probe_share=0.1, min_calls=3, probe=probe)


def served(health: HealthView, scores=SMALL, **kw):
    return steps(scores, TABLE, 0.9, facts(**kw), health=health)


def test_all_healthy_changes_nothing() -> None:
    without = steps(SMALL, TABLE, 0.9, facts())
    assert served(view()) == without
    assert (without.model, without.fallbacks) == ("s1", ["s2", "m1", "l1", "l2"])


def test_an_open_model_is_skipped_within_its_tier_and_goes_last() -> None:
    choice = served(view(s1=OPEN))
    assert (choice.tier, choice.reason, choice.model) == ("small", "classifier", "s2")
    assert choice.fallbacks == ["m1", "l1", "l2", "s1"]
    assert choice.detail == ("skipped s1 (circuit open: 5 of 5 calls failed; probed again in "
                             "12 s)")


def test_a_down_tier_moves_to_the_next_stronger_one() -> None:
    choice = served(view(s1=OPEN, s2=OPEN))
    assert (choice.tier, choice.reason, choice.model) == ("medium", "health_upgrade", "m1")
    assert choice.fallbacks == ["l1", "l2"]
    assert choice.detail is not None and choice.detail.startswith("tier 'small' is down (s1 ")
    assert choice.detail.endswith(": the next stronger tier, 'medium'")


def test_down_models_of_stronger_tiers_go_last_in_the_fallbacks() -> None:
    choice = served(view(m1=OPEN, l1=OPEN))
    assert (choice.model, choice.fallbacks) == ("s1", ["s2", "l2", "m1", "l1"])


def test_the_strongest_tier_down_degrades_to_the_strongest_healthy_weaker_one() -> None:
    large = {"small": 0.1, "medium": 0.2, "large": 0.9}
    choice = served(view(l1=OPEN, l2=OPEN), scores=large)
    assert (choice.tier, choice.reason, choice.model) == ("medium", "degraded", "m1")
    assert "the strongest usable weaker tier, 'medium'" in (choice.detail or "")


def test_a_forced_tier_down_is_a_503_naming_it_with_the_wait() -> None:
    with pytest.raises(NoHealthyModel) as err:
        served(view(s1=OPEN, s2=OPEN), forced_tier="small")
    assert err.value.tier == "small" and err.value.retry_after == 12
    assert str(err.value).startswith("tier 'small' is forced and has no healthy model: s1 (")


def test_a_fixed_task_rule_is_never_left() -> None:
    with pytest.raises(NoHealthyModel) as err:
        served(view(s1=OPEN, s2=OPEN), task="fixed")
    assert "task 'fixed' maps to tier 'small'" in str(err.value)


def test_a_task_rules_floor_is_never_crossed_downwards() -> None:
    large = {"small": 0.1, "medium": 0.2, "large": 0.9}
    down = view(l1=OPEN, l2=OPEN, m1=OPEN)
    assert served(down, scores=large).tier == "small"  # no rule: degraded to small
    with pytest.raises(NoHealthyModel) as err:
        served(down, scores=large, task="plan")
    assert err.value.tier == "large"


def test_the_callers_ceiling_and_cost_cap_are_not_crossed_upwards() -> None:
    down = view(s1=OPEN, s2=OPEN)
    with pytest.raises(NoHealthyModel):
        served(down, ceiling_tier="small")
    with pytest.raises(NoHealthyModel):
        served(down, max_cost_usd=0.0002)  # only small fits
    assert served(down, max_cost_usd=0.01).tier == "medium"


def test_context_limits_hold_when_moving() -> None:
    long = facts(tokens_in=20_000)  # small cannot hold it; medium and large can
    choice = steps(SMALL, TABLE, 0.9, long, health=view(m1=OPEN))
    assert (choice.tier, choice.reason) == ("large", "health_upgrade")


def test_a_half_open_model_is_probed_on_its_share_only() -> None:
    probing = served(view(probe=0.05, s1=HALF))
    assert probing.model == "s1" and "probing s1 after its cooldown" in (probing.detail or "")
    waiting = served(view(probe=0.5, s1=HALF))
    assert waiting.model == "s2" and "s1 (circuit half-open" in (waiting.detail or "")
    behind = served(view(probe=0.05, s2=HALF))  # behind a healthy model it is still probed
    assert (behind.model, behind.fallbacks[:1]) == ("s2", ["s1"])
    assert served(view(probe=0.5, s2=HALF)).model == "s1"


def test_latency_sensitive_puts_the_fastest_measured_model_first() -> None:
    fast = ModelState(latency_calls=10, p50_ms=200.0, p95_ms=400.0)
    slow = ModelState(latency_calls=10, p50_ms=900.0, p95_ms=2000.0)
    health = view(s1=slow, s2=fast)
    assert served(health).model == "s1"  # not asked: the configured order
    choice = served(health, latency_sensitive=True)
    assert (choice.model, choice.fallbacks[0]) == ("s2", "s1")
    assert choice.detail == "latency_sensitive: s2 first (median 200 ms)"
    few = view(s1=ModelState(latency_calls=10, p50_ms=100.0),
               s2=ModelState(latency_calls=2, p50_ms=900.0))  # under min_calls: measured next
    unmeasured = served(few, latency_sensitive=True)
    assert unmeasured.model == "s2"
    assert unmeasured.detail == "latency_sensitive: s2 first (not yet measured)"


def test_health_moving_an_explored_decision_makes_it_certain() -> None:
    explore = ExplorationDraw(rate=0.5, explore=0.0)  # the map's chances: medium
    verdict = Verdict(bounds=(1.0, 0.0, 1.0), quality=(0.9, 0.5, 0.9), explore=(0.0, 0.3, 0.0),
                      category=None, detail="")
    choice = steps(SMALL, TABLE, 0.9, replace(facts(), learned=verdict), draw=explore,
                   health=view(m1=OPEN))
    assert (choice.tier, choice.reason, choice.propensity) == ("large", "health_upgrade", 1.0)


def test_health_step_is_the_identity_on_a_healthy_view() -> None:
    base = steps(SMALL, TABLE, 0.9, facts())
    assert health_step(base, facts(), TABLE, HealthView()) is base
