"""Which tier an escalation goes to, on the shipped config's three tiers."""

from __future__ import annotations

import numpy as np
import pytest

from router.config import load_settings
from router.decision.choice import CallFacts, TierTable
from router.decision.escalation import next_tier
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
    from router.config import LearningConfig
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


def test_a_verifiable_call_tries_a_cheaper_tier_first_only_when_it_pays_with_the_waste() -> None:
    from router.decision.escalation import cheap_first
    from router.decision.policy import decide

    decided = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95, CALL)
    assert decided.tier == "large"
    plan = cheap_first(decided, TABLE, CALL, [0.5, 0.6, 0.9])
    assert plan is not None and plan.tier == "small" and "try 'small' first" in plan.detail
    # a cheap tier that almost never passes wastes more than it saves: direct
    assert cheap_first(decided, TABLE, CALL, [0.001, 0.002, 0.9]) is None
    forced = decide({"small": 0.5, "medium": 0.6, "large": 0.9}, TABLE, 0.95,
                    CallFacts(100, 100, forced_tier="large"))
    assert cheap_first(forced, TABLE, CALL, [0.5, 0.6, 0.9]) is None  # forced means forced
