"""The policy alone: scores + tier table + rules + knob -> tier, in the documented order."""

from __future__ import annotations

import pytest

from router.config import Pin, TaskRule, TierConfig
from router.decision.choice import CallFacts, Choice, TierTable
from router.decision.learned_map import Verdict
from router.decision.pipeline import Reads, choose
from router.decision.policy import ExplorationDraw, decide, threshold_choice
from router.errors import RequestLimitError

TIERS = [
    TierConfig(name="small", models=["s1", "s2"], input_price_per_m=0.1, output_price_per_m=0.4,
               context_window=8_000, capabilities=["json"]),
    TierConfig(name="medium", models=["m1"], input_price_per_m=1.0, output_price_per_m=4.0,
               context_window=32_000),
    TierConfig(name="large", models=["l1", "l2"], input_price_per_m=10.0, output_price_per_m=30.0,
               context_window=200_000),
]
SCORES = {"small": 0.5, "medium": 0.8, "large": 0.9}


def facts(**kw) -> CallFacts:
    return CallFacts(**{"tokens_in": 1000, "expected_tokens_out": 100, **kw})


def test_threshold_choice_is_relative_to_the_best_tier() -> None:
    assert threshold_choice([0.5, 0.8, 0.9], 0.85) == 1  # 0.8 >= 0.85 * 0.9
    assert threshold_choice([0.5, 0.8, 0.9], 0.9) == 2  # 0.8 < 0.81
    assert threshold_choice([0.5, 0.8, 0.9], 0.5) == 0  # 0.5 >= 0.45
    assert threshold_choice([0.5, 0.8, 0.7], 0.95) == 1  # the best tier always passes below 1


def test_the_knob_keeps_its_meaning_when_every_score_sinks() -> None:
    """Off the training domains all scores fall; the ratios, and so the choice, do not."""
    home, away = [0.6, 0.8, 0.9], [0.2, 0.8 / 3, 0.3]
    assert threshold_choice(home, 0.85) == threshold_choice(away, 0.85) == 1


def test_ties_go_to_the_cheaper_tier_and_one_is_the_strongest() -> None:
    assert threshold_choice([0.7, 0.7, 0.7], 0.99) == 0
    assert threshold_choice([0.4, 0.7, 0.7], 0.99) == 1
    assert threshold_choice([0.0, 0.0, 0.0], 0.9) == 0
    assert threshold_choice([0.7, 0.7, 0.7], 1.0) == 2  # "no loss at all": the sweep's top
    assert threshold_choice([0.4, 0.8, 0.7], 1.0) == 2  # even where a cheaper tier rates higher


def test_classifier_choice_and_fallbacks() -> None:
    choice = decide(SCORES, TierTable(TIERS), 0.75, facts())
    assert (choice.tier, choice.reason, choice.model) == ("medium", "classifier", "m1")
    assert choice.fallbacks == ["l1", "l2"]
    small = decide(SCORES, TierTable(TIERS), 0.1, facts())
    assert small.model == "s1" and small.fallbacks == ["s2", "m1", "l1", "l2"]
    assert small.estimated_cost_usd == pytest.approx((1000 * 0.1 + 100 * 0.4) / 1e6)


def test_forced_wins_over_everything() -> None:
    forced = facts(forced_tier="large", task="x", max_cost_usd=0)
    choice = decide(SCORES, TierTable(TIERS), 0.0, forced)
    assert (choice.tier, choice.reason) == ("large", "forced")


def test_task_rules_floor_and_fixed() -> None:
    rules = {"plan": TaskRule(min_tier="large"), "chat": TaskRule(tier="small"),
             "code": TaskRule(min_tier="small")}
    ruled = TierTable(TIERS, rules)
    assert decide(SCORES, ruled, 0.1, facts(task="plan")).reason == "task_rule"
    assert decide(SCORES, ruled, 0.99, facts(task="chat")).tier == "small"
    unchanged = decide(SCORES, ruled, 0.75, facts(task="code"))
    assert (unchanged.tier, unchanged.reason) == ("medium", "classifier")


def test_pins_match_key_role_and_task_fixed_first_then_the_highest_floor() -> None:
    pins = (Pin(key="team-a", role="critic", min_tier="large"), Pin(role="critic",
            min_tier="medium"), Pin(key="team-b", task="greet", tier="small"))
    table = TierTable(TIERS, {"chat": TaskRule(tier="small")}, pins=pins)
    own = decide(SCORES, table, 0.1, facts(key="team-a", role="critic"))
    assert (own.tier, own.reason) == ("large", "task_rule")
    assert own.detail == "key 'team-a' role 'critic' maps to at least 'large'"
    assert decide(SCORES, table, 0.1, facts(key="team-c", role="critic")).tier == "medium"
    fixed = decide(SCORES, table, 0.99, facts(key="team-b", role="critic", task="greet"))
    assert (fixed.tier, fixed.detail) == ("small", "key 'team-b' task 'greet' maps to tier "
                                                   "'small'")
    assert decide(SCORES, table, 0.99, facts(key="team-a", task="greet")).tier == "large"
    assert decide(SCORES, table, 0.99, facts(task="chat")).tier == "small"  # a task rule
    with pytest.raises(ValueError, match="at least one of"):
        Pin(tier="small")


def test_context_and_tools_move_up() -> None:
    long = decide(SCORES, TierTable(TIERS), 0.1, facts(tokens_in=20_000))
    assert (long.tier, long.reason) == ("medium", "context_upgrade")
    assert "20100 tokens" in long.detail
    tools = decide(SCORES, TierTable(TIERS), 0.1, facts(has_tools=True))
    assert (tools.tier, tools.reason) == ("medium", "context_upgrade")
    huge = decide(SCORES, TierTable(TIERS), 0.1, facts(tokens_in=150_000))
    assert huge.tier == "large" and huge.fallbacks == ["l2"]


def test_budget_picks_best_that_fits_and_says_when_none_does() -> None:
    cost_medium = (1000 * 1.0 + 100 * 4.0) / 1e6
    choice = decide(SCORES, TierTable(TIERS), 0.99, facts(max_cost_usd=cost_medium))
    assert (choice.tier, choice.reason) == ("medium", "budget")
    none = decide(SCORES, TierTable(TIERS), 0.99, facts(max_cost_usd=0.0))
    assert (none.tier, none.reason) == ("small", "budget") and "no tier fits" in none.detail
    within = decide(SCORES, TierTable(TIERS), 0.99, facts(max_cost_usd=1.0))
    assert within.reason == "classifier"


def test_a_capability_only_a_stronger_tier_has_moves_up() -> None:
    seeing = [*TIERS[:2], TIERS[2].model_copy(update={"capabilities": ["tools", "vision"]})]
    vision = decide(SCORES, TierTable(seeing), 0.1, facts(needs=frozenset({"vision"})))
    assert vision.tier == "large" and vision.reason == "context_upgrade"
    assert "vision" in vision.detail


def test_a_move_to_a_cheaper_tier_says_so() -> None:
    """Only the cheapest tier has the window for this call: that is a downgrade, not an upgrade."""
    wide = [TIERS[0].model_copy(update={"context_window": 1_000_000}), *TIERS[1:]]
    choice = decide(SCORES, TierTable(wide), 1.0, facts(tokens_in=500_000))
    assert (choice.tier, choice.reason) == ("small", "context_downgrade")
    assert "only 'small' can serve it" in choice.detail


def test_the_requested_model_is_a_ceiling() -> None:
    capped = decide(SCORES, TierTable(TIERS), 1.0, facts(ceiling_tier="medium"))
    assert (capped.tier, capped.reason) == ("medium", "ceiling")
    below = decide(SCORES, TierTable(TIERS), 0.1, facts(ceiling_tier="medium"))
    assert (below.tier, below.reason) == ("small", "classifier")  # a cheaper choice stands
    ruled = decide(SCORES, TierTable(TIERS, {"plan": TaskRule(min_tier="large")}), 0.1,
                   facts(task="plan", ceiling_tier="small"))
    assert ruled.tier == "small"  # the caller's own cheap model wins over a task floor


def test_a_call_its_ceiling_cannot_serve_is_refused_naming_both() -> None:
    seeing = TierTable([*TIERS[:2], TIERS[2].model_copy(update={"capabilities": ["vision"]})])
    with pytest.raises(RequestLimitError, match="'vision' capability.*'m1' \\(tier 'medium'\\)"):
        decide(SCORES, seeing, 0.1, facts(needs=frozenset({"vision"}), ceiling_tier="medium",
                                          ceiling_model="m1"))
    with pytest.raises(RequestLimitError, match="300100 tokens of context") as refused:
        decide(SCORES, TierTable(TIERS), 0.1, facts(tokens_in=300_000, ceiling_tier="large"))
    assert refused.value.field == "model" and refused.value.limit == "large"
    served = decide(SCORES, seeing, 0.1, facts(needs=frozenset({"vision"}), ceiling_tier="large"))
    assert served.tier == "large"


def split_verdict(explore: tuple[float, ...] = (0.0, 0.0, 0.0)) -> Verdict:
    """A synthetic verdict: medium's bound 0.86 < 0.95 <= large's; a share 0.357 of the
    category's calls to medium keeps 0.95 in expectation."""
    return Verdict(bounds=(0.0, 0.86, 1.0), quality=(0.5, 0.8, 0.9), explore=explore,
                   category="k/task:arc", detail="the map's why", split=(2, 1, 0.357))


def served(verdict: Verdict, u: float | None, table: TierTable | None = None, **kw) -> Choice:
    draw = (lambda: ExplorationDraw(0.1, u)) if u is not None else None
    return choose(SCORES, table or TierTable(TIERS), 0.95, facts(learned=verdict, **kw),
                  Reads(draw=draw))


def test_the_maps_allowance_is_a_logged_draw_with_its_propensity() -> None:
    verdict = split_verdict()
    cheap = served(verdict, 0.2)
    assert (cheap.tier, cheap.reason, cheap.detail) == ("medium", "classifier", "the map's why")
    assert cheap.propensity == pytest.approx(0.357)
    base = served(verdict, 0.5)
    assert (base.tier, base.reason) == ("large", "classifier")
    assert base.propensity == pytest.approx(0.643)
    dry = served(verdict, None)  # a dry run (no draw): the base tier, whatever the share
    assert (dry.tier, dry.propensity) == ("large", None)


def test_exploration_and_the_allowance_share_one_draw_and_sum_to_one() -> None:
    """Exploration of other tiers comes first; the allowance splits the rest; exploration of
    the allowance's own tier counts only beyond its share (the larger, not the sum); each
    served tier logs its whole probability, so the outcomes' propensities sum to one."""
    rest = 1 - 0.04
    for medium in (0.02, 0.5):  # exploration of medium below, then above the share
        verdict = split_verdict(explore=(0.04, medium, 0.0))
        to_medium = max(medium, rest * 0.357)
        seen = {}
        for u in (0.01, 0.05, 0.04 + to_medium - 1e-6, 0.99):
            choice = served(verdict, u)
            seen[(choice.tier, choice.reason)] = choice.propensity
        assert seen[("small", "explore")] == pytest.approx(0.04)
        assert seen[("medium", "classifier")] == pytest.approx(to_medium)
        assert seen[("large", "classifier")] == pytest.approx(1 - 0.04 - to_medium)
        explored = ("medium", "explore") in seen
        assert explored == (medium > rest * 0.357)
        if explored:
            assert seen[("medium", "explore")] == pytest.approx(to_medium)


def test_no_allowance_where_a_rule_moved_the_call_or_the_cheaper_tier_cannot_serve_it() -> None:
    verdict = split_verdict()
    ruled = TierTable(TIERS, {"plan": TaskRule(min_tier="large")})
    floored = served(verdict, 0.0, ruled, task="plan")
    assert floored.tier == "large" and floored.propensity == pytest.approx(1.0)
    too_long = served(verdict, 0.0, tokens_in=100_000)  # medium holds 32,000 tokens
    assert too_long.tier == "large" and too_long.propensity == pytest.approx(1.0)
