"""Exploration: now and then send a call to another eligible tier, and say how likely that was.

A router that only ever sees the outcomes of the tiers it chose cannot learn that a cheaper tier
would have done: the logged data has no support there. With probability ``exploration_rate``
a decision moves to another eligible tier, chosen uniformly; the decision records the
probability of the tier it got (its propensity), so retraining weights each outcome by
1/propensity and off-policy estimates stay unbiased.

Never explored: forced tiers, fixed task rules, degraded and budget decisions. Never explored
to: a tier below a task rule's minimum, a tier that cannot hold the call (context, tools), a
tier over the call's ``max_cost_usd``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace

from router.config import Settings, TierConfig
from router.decision.policy import CallFacts, Choice, decide

NOT_EXPLORED = ("forced", "degraded", "budget")


class Explorer:
    """Seeded, thread-safe exploration at a fixed rate."""

    def __init__(self, rate: float, seed: int | None = None):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"The 'rate' parameter must be a float in [0, 1). Got {rate}.")
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def explore(
        self, choice: Choice, facts: CallFacts, settings: Settings
    ) -> tuple[Choice, float | None]:
        """(the choice, its propensity); propensity None when exploration is off."""
        if self.rate == 0.0:
            return choice, None
        others = [] if choice.reason in NOT_EXPLORED else alternatives(choice, facts, settings)
        if not others:
            return choice, 1.0
        with self._lock:
            explore = self._rng.random() < self.rate
            pick = self._rng.randrange(len(others))
        if not explore:
            return choice, 1.0 - self.rate
        tier = others[pick]
        forced = decide({}, settings.tiers, 1.0, replace(facts, forced_tier=tier))
        detail = f"exploring: {tier} instead of {choice.tier} (rate {self.rate})"
        return replace(forced, reason="explore", detail=detail), self.rate / len(others)


def alternatives(choice: Choice, facts: CallFacts, settings: Settings) -> list[str]:
    """Tiers other than the chosen one that the rules and the call allow."""
    names = settings.tier_names
    floor = 0
    rule = settings.task_rules.get(facts.task) if facts.task else None
    if rule is not None:
        if rule.tier is not None:
            return []
        floor = names.index(rule.min_tier) if rule.min_tier else 0
    return [t.name for i, t in enumerate(settings.tiers)
            if i >= floor and t.name != choice.tier and _allowed(t, facts)]


def _allowed(tier: TierConfig, facts: CallFacts) -> bool:
    fits = tier.context_window >= facts.tokens_in + facts.expected_tokens_out
    tools = not facts.has_tools or "tools" in tier.capabilities
    cost = tier.estimate_cost(facts.tokens_in, facts.expected_tokens_out)
    affordable = facts.max_cost_usd is None or cost <= facts.max_cost_usd
    return fits and tools and affordable
