"""Sticky runs: a run's later calls stay on the model its earlier calls used.

Agents that switch model in the middle of a run lose the provider's prompt cache and, for
reasoning models, their thinking signatures. With ``sticky: run`` the fresh decision for a call
is compared with the model of the run's last call (its *pin*):

* the call needs a stronger tier (the classifier, a task rule or the call's context asks for
  one): it moves up, and the run stays there (its later calls are pinned to the new model);
* a rule that must win moves it: a forced tier, a fixed task rule, the call's context or
  capabilities the pinned tier lacks, the requested model's ceiling, ``max_cost_usd`` or a low
  budget, a degraded service;
* the pinned model is unhealthy (`unhealthy`: the set of models health tracking has opened a
  circuit for; the health guard fills it): the fresh decision, which skips it;
* otherwise the pin: reason ``sticky``, even where the classifier (or exploration) would have
  gone to a cheaper or another tier.

`detail` says which. Pure, like the policy: the pin and the unhealthy set are snapshots.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import replace

from router.decision.choice import CallFacts, Choice, TierTable, force, serves, usable_first
from router.schemas import Reason

# Reasons the fresh decision had to take: a sticky run follows them, whatever its pin.
BINDING: frozenset[Reason] = frozenset({
    "forced", "task_rule", "context_upgrade", "context_downgrade", "ceiling", "budget",
    "degraded",
})


def stick(
    fresh: Choice, pin_tier: str | None, pin_model: str | None, table: TierTable,
    facts: CallFacts, unhealthy: Set[str] = frozenset(),
) -> Choice:
    """The choice of a sticky run's call: `fresh` (the decision as if not sticky) or the pin."""
    if pin_tier is None or pin_model is None or pin_tier not in table.names or (
        pin_model not in table.tier(pin_tier).models
    ):
        return fresh  # the first call, or the pin's model no longer serves (a reload)
    if fresh.model == pin_model:
        return fresh
    if pin_model in unhealthy:
        return fresh.say(f"sticky run: left {pin_model}, which is unhealthy")
    if fresh.reason in BINDING:
        return fresh.say(f"sticky run: left {pin_model} ({fresh.reason})")
    moved_up = table.index(fresh.tier) > table.index(pin_tier)
    if moved_up and fresh.reason != "explore":
        return fresh.say(f"sticky run: moved up from {pin_tier} to {fresh.tier}, "
                         "which this call needs; the run stays there")
    if not serves(table.tier(pin_tier), facts, within_cap=True):
        return fresh.say(f"sticky run: left {pin_model}, whose tier cannot serve this call")
    pinned = force(table, pin_tier, "sticky", facts,
                   f"sticky run: stays on {pin_model}, the model of its earlier calls "
                   f"(the router would have chosen {fresh.tier})")
    chain = [m for m in [pinned.model, *pinned.fallbacks] if m != pin_model]
    return replace(pinned, model=pin_model,
                   fallbacks=usable_first(chain, lambda m: m not in unhealthy))
