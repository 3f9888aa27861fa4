"""Which tier an escalation goes to, on the shipped config's three tiers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from router.config import LearningConfig, load_settings
from router.decision.checks import LABELLED, PASSED, PASSED_QUALITY, RUNS, CheckEntry
from router.decision.choice import CallFacts, TierTable, force
from router.decision.escalation import next_tier
from router.decision.learned_map import COLUMNS, LearnedMap, Verdict
from router.decision.learned_map import TOTAL as TOTAL_COLUMN
from router.decision.policy import decide
from router.errors import EscalationRefused

TABLE = TierTable.of(load_settings(None))
CALL = CallFacts(tokens_in=100, expected_tokens_out=100)


def test_the_next_stronger_tier_or_the_strongest_when_told() -> None:
    assert TABLE.names[next_tier(TABLE, CALL, "small")] == "medium"
    assert TABLE.names[next_tier(TABLE, CALL, "small", straight_to_strongest=True)] == "large"
    assert TABLE.names[next_tier(TABLE, CALL, "medium")] == "large"


def test_every_climb_is_strictly_up_so_a_chain_ends() -> None:
    tier, steps = "small", 0
    while True:
        try:
            tier = TABLE.names[next_tier(TABLE, CALL, tier)]
        except EscalationRefused as refused:
            assert refused.limit == "large"
            break
        steps += 1
    assert steps == len(TABLE.names) - 1


def test_limits_are_named() -> None:
    with pytest.raises(EscalationRefused, match="ceiling") as ceiling:
        next_tier(TABLE, CallFacts(100, 100, ceiling_tier="small", ceiling_model="gpt-4.1-nano"),
                  "small")
    assert ceiling.value.limit == "gpt-4.1-nano"
    with pytest.raises(EscalationRefused, match="max_cost_usd") as cap:
        next_tier(TABLE, CallFacts(100, 100, max_cost_usd=1e-6), "small")
    assert cap.value.limit == 1e-6
    # vision only on the strongest tier: from small, straight there
    vision = CallFacts(100, 100, needs=frozenset({"vision"}))
    assert TABLE.names[next_tier(TABLE, vision, "small")] == "large"
    with pytest.raises(EscalationRefused, match="no configured tier"):
        next_tier(TABLE, CALL, "retired-tier")


def test_a_cap_that_fits_only_the_middle_tier_keeps_it_even_when_told_to_skip() -> None:
    facts = CallFacts(100, 100, max_cost_usd=0.0003)
    assert TABLE.names[next_tier(TABLE, facts, "small", straight_to_strongest=True)] == "medium"


def test_the_learned_map_sends_an_escalation_past_a_middle_tier_that_fails_the_category() -> None:
    """Synthetic outcomes: in task 'code' medium realises 0.5 of large's 0.9; in 'chat' 0.95
    of 0.96. From small, 'code' goes straight to large, 'chat' to medium; cold: medium."""
    from router.decision.categories import Signals
    from router.decision.escalation import middle_fails_too
    from router.decision.map_fit import empty_map, fit_map

    tiers = ("small", "medium", "large")
    scores = (0.5, 0.7, 0.8)

    def sums(per_tier: dict[str, tuple[int, float]]) -> np.ndarray:
        total = sum(n for n, _ in per_tier.values())
        return np.array([[n, n * q, n, n, n * q, n * s, total * s, total, n]
                         for (n, q), s in ((per_tier.get(t, (0, 0.0)), s)
                                           for t, s in zip(tiers, scores, strict=True))],
                        dtype=float)

    cfg = LearningConfig(min_outcomes=30, cluster_bits=0)
    code = sums({"small": (200, 0.2), "medium": (200, 0.5), "large": (200, 0.9)})
    chat = sums({"small": (200, 0.6), "medium": (200, 0.95), "large": (200, 0.96)})
    learned = fit_map({("k", ""): code + chat, ("k", "task:code"): code,
                       ("k", "task:chat"): chat}, tiers, cfg)
    assert middle_fails_too(learned, Signals("k", task="code"), 1, 0.9)
    assert not middle_fails_too(learned, Signals("k", task="chat"), 1, 0.9)
    assert not middle_fails_too(empty_map(tiers, cfg), Signals("k", task="code"), 1, 0.9)
    assert not middle_fails_too(learned, Signals("k", task="code"), 2, 0.9)  # the strongest


def test_without_check_evidence_a_verifiable_call_goes_direct() -> None:
    from router.decision.escalation import cheap_first

    decided = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95, LEARNED)
    assert decided.tier == "large"
    assert cheap_first(decided, TABLE, LEARNED, None, 0.95) is None
    assert cheap_first(decided, TABLE, CALL, exact(0.6), 0.95) is None  # no verdict: direct


def test_an_exact_check_that_passes_often_puts_the_cheap_tier_first() -> None:
    """Synthetic check evidence: small passes 60% of 200 checks, every passed answer good."""
    from router.decision.escalation import cheap_first

    decided = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95, LEARNED)
    plan = cheap_first(decided, TABLE, LEARNED, exact(0.6), 0.95)
    assert plan is not None and plan.tier == "small" and "try 'small'" in (plan.detail or "")
    forced = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95,
                    replace(LEARNED, forced_tier="large"))
    assert cheap_first(forced, TABLE, LEARNED, exact(0.6), 0.95) is None  # forced means forced


def test_a_cheap_tier_that_fails_its_checks_often_sends_the_call_direct() -> None:
    from router.decision.escalation import cheap_first

    decided = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95, LEARNED)
    assert cheap_first(decided, TABLE, LEARNED, exact(0.001), 0.95) is None


def test_a_plan_replaces_the_maps_allowance_when_it_costs_less_and_spends_the_margin_once(
) -> None:
    """Synthetic: the map sends 30% of the category's calls to medium (its allowance) and the
    rest to large; a verifiable call whose exact check passes often on small plans from large
    with the whole margin, whichever tier the draw gave, with propensity 1; a weak check
    leaves the draw as it was."""
    from router.decision.escalation import cheap_first

    verdict = replace(LEARNED.learned, split=(2, 1, 0.3))
    facts = replace(LEARNED, learned=verdict)
    base = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95, facts)
    drawn = replace(force(TABLE, "medium", "classifier", facts), propensity=0.3)
    for choice in (base, drawn):
        plan = cheap_first(choice, TABLE, facts, exact(0.6), 0.95)
        assert plan is not None and plan.tier == "small" and plan.propensity == 1.0
        assert "up to 'large'" in (plan.detail or "")
    assert cheap_first(drawn, TABLE, facts, entry(0.9, 0.6), 0.95) is None


def test_a_weak_check_whose_passed_answers_are_poor_breaks_the_safety_rule() -> None:
    """Synthetic: small passes 90% of its checks but passed answers are good 60% of the
    time (a format check): keeping them would lose far more than 5% of large's quality."""
    from router.decision.escalation import best_plan, cheap_first

    weak = entry(pass_rate=0.9, passed_quality=0.6)
    decided = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95, LEARNED)
    assert cheap_first(decided, TABLE, LEARNED, weak, 0.95) is None
    plan = best_plan([0, 1], 2, 1.0, 0.7, exact(0.6), (1.0, 3.0, 10.0), 0.95)
    assert plan.chain[-1] == 2 and plan.cost < 10.0 and plan.bound >= 0.95
    # the plan's expected cost counts the wasted call: 1 + 0.4 x ... < 10
    assert best_plan([0, 1], 2, 0.9, 0.7, exact(0.6), (1.0, 3.0, 10.0), 0.95).chain == (2,)


def test_a_verifiable_escalation_tries_a_middle_tier_whose_checks_pass() -> None:
    """Synthetic: in task 'code' medium's quality bound is below the target (a plain
    escalation from small skips it) but its exact check passes 70% of the time: a
    verifiable escalation tries it before large."""
    from router.decision.categories import Signals
    from router.decision.checks import fit_checks
    from router.decision.escalation import escalation_plan, escalation_tier

    learned = code_map()
    signals = Signals("k", task="code")
    checks = {("k", ""): check_sums([(200, 40), (200, 140), (200, 180)]),
              ("k", "task:code"): check_sums([(200, 40), (200, 140), (200, 180)])}
    learned = replace(learned, checks=fit_checks(checks, TABLE.names, learned.config))
    assert TABLE.names[escalation_tier(TABLE, CALL, "small", learned, signals, 0.9)] == "large"
    assert TABLE.names[escalation_tier(TABLE, CALL, "small", learned, signals, 0.9,
                                       verifiable=True)] == "medium"
    assert TABLE.names[escalation_tier(TABLE, CALL, "medium", learned, signals, 0.9,
                                       verifiable=True)] == "large"
    _, why = escalation_plan(TABLE, CALL, "small", learned, signals, 0.9, verifiable=True)
    assert why is not None and why.startswith("verifiable: try 'medium' (passes 0.70")
    assert escalation_plan(TABLE, CALL, "small", learned, signals, 0.9)[1] is None


def code_map() -> LearnedMap:
    from router.decision.map_fit import fit_map

    tiers, scores = TABLE.names, (0.5, 0.7, 0.8)
    per_tier = {"small": (200, 0.2), "medium": (200, 0.7), "large": (200, 0.9)}
    sums = np.array([[n, n * q, n, n, n * q, n * s, 600 * s, 600, n]
                     for (n, q), s in ((per_tier[t], s) for t, s in zip(tiers, scores,
                                                                           strict=True))])
    return fit_map({("k", ""): sums, ("k", "task:code"): sums}, tiers,
                   LearningConfig(min_outcomes=30, cluster_bits=0))


def check_sums(per_tier: list[tuple[int, int]], labelled_good: float = 1.0) -> np.ndarray:
    """(T, len(COLUMNS)) check sums: (checks run, passed) per tier, every passed answer
    labelled `labelled_good`."""
    rows = np.zeros((len(per_tier), len(COLUMNS)))
    for t, (runs, passed) in enumerate(per_tier):
        rows[t, RUNS] = rows[t, TOTAL_COLUMN] = runs
        rows[t, PASSED] = rows[t, LABELLED] = passed
        rows[t, PASSED_QUALITY] = passed * labelled_good
    return rows


def entry(pass_rate: float, passed_quality: float, runs: int = 200) -> CheckEntry:
    from router.decision.checks import fit_checks

    sums = check_sums([(runs, round(runs * pass_rate))] * 3, passed_quality)
    return fit_checks({("k", ""): sums}, TABLE.names, LearningConfig()).entries[("k", "")]


def exact(pass_rate: float) -> CheckEntry:
    """Check evidence of an exact check: every passed answer labelled good."""
    return entry(pass_rate, 1.0)


LEARNED = replace(CALL, learned=Verdict(bounds=(0.5, 0.8, 1.0), quality=(0.45, 0.6, 0.7),
                                        explore=(0.0, 0.0, 0.0), category="k", detail=None))
