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

from router.config import Settings
from router.decision.policy import CallFacts, Choice, decide, eligible

# Reasons the fresh decision had to take: a sticky run follows them, whatever its pin.
BINDING = frozenset({"forced", "task_rule", "context_upgrade", "context_downgrade", "ceiling",
                     "budget", "degraded"})


def stick(
    fresh: Choice, pin_tier: str | None, pin_model: str | None, settings: Settings,
    facts: CallFacts, unhealthy: Set[str] = frozenset(),
) -> Choice:
    """The choice of a sticky run's call: `fresh` (the decision as if not sticky) or the pin."""
    names = settings.tier_names
    if pin_tier is None or pin_model is None or pin_tier not in names or (
        pin_model not in settings.tier(pin_tier).models
    ):
        return fresh  # the first call, or the pin's model no longer serves (a reload)
    if fresh.model == pin_model:
        return fresh
    if pin_model in unhealthy:
        return _say(fresh, f"sticky run: left {pin_model}, which is unhealthy")
    if fresh.reason in BINDING:
        return _say(fresh, f"sticky run: left {pin_model} ({fresh.reason})")
    moved_up = names.index(fresh.tier) > names.index(pin_tier)
    if moved_up and fresh.reason != "explore":
        return _say(fresh, f"sticky run: moved up from {pin_tier} to {fresh.tier}, "
                           "which this call needs; the run stays there")
    tier = settings.tier(pin_tier)
    if not eligible(tier, facts):  # cannot hold this call (or over its max_cost_usd)
        return _say(fresh, f"sticky run: left {pin_model}, whose tier cannot serve this call")
    pinned = decide({}, settings.tiers, 1.0, replace(facts, forced_tier=pin_tier))
    chain = [m for m in [pinned.model, *pinned.fallbacks] if m != pin_model]
    # an open circuit goes last, as in every other decision
    fallbacks = [m for m in chain if m not in unhealthy] + [m for m in chain if m in unhealthy]
    return replace(pinned, model=pin_model, fallbacks=fallbacks, reason="sticky",
                   detail=f"sticky run: stays on {pin_model}, the model of its earlier calls "
                          f"(the router would have chosen {fresh.tier})")


def _say(choice: Choice, why: str) -> Choice:
    return replace(choice, detail=f"{choice.detail}; {why}" if choice.detail else why)
