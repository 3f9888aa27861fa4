"""Sticky runs: stay on the run's model, move up when a call needs it, follow binding rules."""

from __future__ import annotations

from dataclasses import replace

import pytest

from router.config import load_settings
from router.decision.choice import CallFacts, Choice, TierTable, force
from router.decision.sticky import BINDING, stick
from router.schemas import Reason

FACTS = CallFacts(tokens_in=100, expected_tokens_out=100)


@pytest.fixture(scope="module")
def shipped() -> TierTable:
    return TierTable.of(load_settings(None))


def fresh(table: TierTable, tier: str, reason: Reason = "classifier",
          facts: CallFacts = FACTS) -> Choice:
    return force(table, tier, reason, facts)


def test_a_cheaper_fresh_choice_stays_on_the_runs_model(shipped: TierTable) -> None:
    choice = stick(fresh(shipped, "small"), "medium", "mistral-medium-latest", shipped, FACTS)
    assert (choice.tier, choice.model, choice.reason) == (
        "medium", "mistral-medium-latest", "sticky")
    assert "stays on mistral-medium-latest" in choice.detail  # type: ignore[operator]
    assert "would have chosen small" in choice.detail  # type: ignore[operator]
    assert "mistral-medium-latest" not in choice.fallbacks
    assert choice.fallbacks[0] == "gpt-4.1-mini" and choice.fallbacks[-1].startswith("claude")
    assert choice.estimated_cost_usd == shipped.tier("medium").estimate_cost(100, 100)


def test_a_sticky_calls_fallbacks_put_unhealthy_models_last(shipped: TierTable) -> None:
    choice = stick(fresh(shipped, "small"), "medium", "mistral-medium-latest", shipped, FACTS,
                   unhealthy=frozenset({"gpt-4.1-mini"}))
    assert choice.model == "mistral-medium-latest" and choice.reason == "sticky"
    assert choice.fallbacks[-1] == "gpt-4.1-mini" and choice.fallbacks[0] == "gpt-4.1"


def test_a_call_that_needs_a_stronger_tier_moves_up(shipped: TierTable) -> None:
    up = fresh(shipped, "large")
    choice = stick(up, "small", "gpt-4.1-nano", shipped, FACTS)
    assert (choice.tier, choice.model, choice.reason) == ("large", "gpt-4.1", "classifier")
    assert "moved up from small to large" in choice.detail  # type: ignore[operator]


def test_the_same_model_and_the_first_call_are_left_as_they_are(shipped: TierTable) -> None:
    same = fresh(shipped, "small")
    assert stick(same, "small", "gpt-4.1-nano", shipped, FACTS) == same
    assert stick(same, None, None, shipped, FACTS) == same
    # a pin whose model no longer serves its tier (a reload changed the config): no pin
    assert stick(same, "medium", "retired-model", shipped, FACTS) == same


@pytest.mark.parametrize("reason", sorted(BINDING))
def test_binding_reasons_move_the_run(shipped: TierTable, reason: str) -> None:
    choice = stick(fresh(shipped, "small", reason), "large", "gpt-4.1", shipped, FACTS)
    assert (choice.tier, choice.reason) == ("small", reason)
    assert f"left gpt-4.1 ({reason})" in choice.detail  # type: ignore[operator]


def test_an_unhealthy_pinned_model_is_left(shipped: TierTable) -> None:
    choice = stick(fresh(shipped, "small"), "large", "gpt-4.1", shipped, FACTS,
                   unhealthy={"gpt-4.1"})
    assert choice.tier == "small" and "gpt-4.1, which is unhealthy" in choice.detail  # type: ignore
    kept = stick(fresh(shipped, "small"), "large", "gpt-4.1", shipped, FACTS,
                 unhealthy={"gpt-4.1-nano"})
    assert kept.reason == "sticky"


def test_exploration_never_moves_a_sticky_run(shipped: TierTable) -> None:
    for tier in ("small", "large"):
        choice = stick(fresh(shipped, tier, "explore"), "medium", "gpt-4.1-mini", shipped, FACTS)
        assert (choice.tier, choice.reason) == ("medium", "sticky")


def test_a_pinned_tier_that_cannot_serve_the_call_is_left(shipped: TierTable) -> None:
    huge = CallFacts(tokens_in=500_000, expected_tokens_out=100)  # over large's 200k window
    choice = stick(fresh(shipped, "small", facts=huge), "large", "gpt-4.1", shipped, huge)
    assert choice.tier == "small" and "cannot serve this call" in choice.detail  # type: ignore
    capped = replace(FACTS, max_cost_usd=1e-5)  # large costs 0.001 here
    choice = stick(fresh(shipped, "small", facts=capped), "large", "gpt-4.1", shipped, capped)
    assert choice.tier == "small"
