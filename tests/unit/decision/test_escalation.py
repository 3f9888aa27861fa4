"""Which tier an escalation goes to, on the shipped config's three tiers."""

from __future__ import annotations

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
