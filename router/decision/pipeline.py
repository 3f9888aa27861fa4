"""The one decision of a `/route` call, every step in order: scores + table + facts -> `Choice`.

1. A call whose scores failed (the model is not loaded or raised) and that forces no tier
   takes the degraded path: the configured safe tier, or, when it is down, another usable one
   (reason ``degraded``, the failure in ``detail``). Never explored.
2. Otherwise `policy.decide` (forced tier, step 2's `TierPick`, task rules, context and
   capabilities, the caller's ceiling, ``max_cost_usd``); then a low budget's lower knob
   (`policy.budget_step`); then exploration (`policy.explore_step`), with the chances the
   learned map's verdict gives each tier (`CallFacts.learned`); then model health
   (`health_view.health_step`), which makes an explored decision it moved certain.
3. A shadow call has no ceiling and is never explored, and when no model is healthy it is
   decided as if health were off: nobody follows it, so it is never refused for either.
4. A call the model scored unlike its training data (`confidence` below `LOW_CONFIDENCE`)
   says so in ``detail`` (after the verdict's why) when the classifier chose its tier.
5. A sticky run's call stays on its run's model unless a rule moves it (`sticky.stick`);
   kept there, it is certain (propensity 1 with exploration on).

Pure: what changes while serving (budget spend, the exploration draws, model health, a run's
model) comes in as `Reads`, snapshots taken for this call; the budget and the draw are read
only when a step needs them, so a call that cannot be explored consumes no draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from router.decision.choice import CallFacts, Choice, TierTable, force
from router.decision.health_view import HealthView, health_step, unusable
from router.decision.policy import (
    ExplorationDraw,
    LowBudget,
    TierPick,
    bound_pick,
    budget_step,
    decide,
    explore_step,
)
from router.decision.sticky import stick
from router.errors import NoHealthyModel

LOW_CONFIDENCE = 0.5  # below it, the answer's detail says the call looked unlike the training data


@dataclass(frozen=True)
class Reads:
    """Snapshots of the serving state one decision reads (each None when that part is off)."""

    low: Callable[[], LowBudget | None] | None = None  # the call's budget, if one is low
    draw: Callable[[], ExplorationDraw] | None = None  # exploration on: the next draw
    health: HealthView | None = None
    pin: tuple[str | None, str | None] | None = None  # a sticky run's (tier, model) so far
    confidence: float = math.nan  # the head's out-of-distribution guard; NaN: none
    failure: str | None = None  # why the scores are missing (then they are NaN)
    shadow: bool = False


def choose(
    scores: Mapping[str, float],
    table: TierTable,
    quality_target: float,
    facts: CallFacts,
    reads: Reads = Reads(),
    pick: TierPick = bound_pick,
) -> Choice:
    """The served decision for one call (steps 1-5 of the module docstring)."""
    if reads.shadow:
        facts = replace(facts, ceiling_tier=None, ceiling_model=None)
    if reads.failure is not None and facts.forced_tier is None:
        choice = replace(degraded(table, facts, reads.failure, reads.health),
                         propensity=1.0 if reads.draw is not None else None)
    else:
        known = {n: 0.0 if math.isnan(v) else v for n, v in scores.items()}
        choice = _scored(known, table, quality_target, facts, reads, pick)
    if reads.pin is not None and not reads.shadow:
        stuck = stick(choice, reads.pin[0], reads.pin[1], table, facts, unusable(reads.health))
        if stuck.reason == "sticky" and choice.reason != "sticky":
            stuck = replace(stuck, propensity=1.0 if reads.draw is not None else None)
        choice = stuck
    return choice


def _scored(
    scores: Mapping[str, float], table: TierTable, quality_target: float, facts: CallFacts,
    reads: Reads, pick: TierPick,
) -> Choice:
    draw = reads.draw() if reads.draw is not None and not reads.shadow else None
    try:
        choice = steps(scores, table, quality_target, facts, reads.low, draw, reads.health, pick)
    except NoHealthyModel:
        if not reads.shadow:
            raise
        choice = steps(scores, table, quality_target, facts, reads.low, draw, None, pick)
    if reads.confidence < LOW_CONFIDENCE and choice.reason == "classifier":
        choice = choice.say(
            f"unlike the training data (confidence {reads.confidence:.2f}): scores pulled "
            "toward each tier's pooled quality")
    return choice


def steps(
    scores: Mapping[str, float],
    table: TierTable,
    quality_target: float,
    facts: CallFacts,
    low: Callable[[], LowBudget | None] | None = None,
    draw: ExplorationDraw | None = None,
    health: HealthView | None = None,
    pick: TierPick = bound_pick,
) -> Choice:
    """`decide`, the budget step, exploration and health, in that order. The propensity is
    None when nothing is drawn (no exploration, no learned map); 1 when health moved the
    decision to another tier (certain, given the health state)."""
    choice = decide(scores, table, quality_target, facts, pick)
    if low is not None and facts.forced_tier is None:
        budget = low()
        if budget is not None:
            choice = budget_step(choice, budget, scores, table, quality_target, facts, pick)
    if draw is not None:
        choice = explore_step(choice, facts, table, draw)
    if health is None:
        return choice
    healthy = health_step(choice, facts, table, health)
    if healthy.tier != choice.tier and choice.propensity is not None:
        healthy = replace(healthy, propensity=1.0)
    return healthy


def degraded(table: TierTable, facts: CallFacts, failure: str,
             health: HealthView | None) -> Choice:
    """The configured safe tier (or, if it is down, another), saying why (fail_open)."""
    assert table.safe_tier is not None, "a served table names its safe tier"
    choice = force(table, table.safe_tier, "degraded", facts, failure)
    if health is not None:
        choice = health_step(choice, facts, table, health)
    return replace(choice, reason="degraded")
