"""What the current learned map would do with a call already logged: the target policy of an
off-policy estimate (router/decision/off_policy.py).

For each logged call, the map's verdict (`LearnedMap.assess`: the call's category from its
key, role, task, step and embedding cluster, as the service looks it up) and `policy.decide`
(pins and task rules, context and tools, the caller's ceiling, ``max_cost_usd``) give the tier
a dry run would get now at the quality target; where the map's fractional allowance splits a
category (`Verdict.split`, which the service draws whenever learning is on), the cheaper tier
gets its share as a probability. Left out, because the log cannot say them: exploration
itself (the target is the map's own choice), a low budget's knob, model health, sticky runs,
and capabilities beyond tools; a call's confidence is not stored either, so with
``learning.prior_confidence`` above 0 a cold call is taken as below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from router.decision.categories import Signals
from router.decision.choice import CallFacts, TierTable
from router.decision.learned_map import LearnedMap
from router.decision.policy import allowance, alternatives, decide


@dataclass(frozen=True)
class LoggedCall:
    """What a stored decision says of its call, enough to decide it again."""

    signals: Signals
    cluster: str | None  # the category path of its embedding's cluster, if any
    scores: Sequence[float]  # the model's scores before adaptation, in tier order
    tokens_in: int
    tokens_out: int
    has_tools: bool = False
    ceiling_tier: str | None = None  # a followed call's own model's tier (never a shadow one)
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class TargetChoice:
    """The map's choice for one logged call."""

    probabilities: tuple[float, ...]  # per tier, summing to 1
    quality: tuple[float, ...]  # the map's predicted quality of each tier for this call
    costs: tuple[float, ...]  # each tier's estimated cost of the call
    category: str | None  # the category that decided (None: cold)


def target_choice(learned: LearnedMap, table: TierTable, call: LoggedCall, target: float,
                  split: bool = True) -> TargetChoice:
    """The map's choice for `call` at `target`; `split` False: the base tier alone (what a
    dry run or a shadow call gets). Raises `RequestLimitError` for a call its ceiling cannot
    serve (the service refused such calls)."""
    s = call.signals
    costs = tuple(tier.estimate_cost(call.tokens_in, call.tokens_out) for tier in table.tiers)
    verdict = learned.assess(s, call.cluster, list(call.scores), math.nan, target, 0.0, costs)
    facts = CallFacts(tokens_in=call.tokens_in, expected_tokens_out=call.tokens_out,
                      has_tools=call.has_tools, task=s.task, role=s.role, key=s.key,
                      ceiling_tier=call.ceiling_tier, max_cost_usd=call.max_cost_usd,
                      learned=verdict)
    choice = decide(dict(zip(table.names, verdict.quality, strict=True)), table, target, facts)
    probabilities = [0.0] * len(table.names)
    chosen = table.index(choice.tier)
    probabilities[chosen] = 1.0
    if split:
        cheap, share = allowance(choice, verdict.split, table,
                                 alternatives(choice, facts, table))
        if cheap is not None:
            probabilities[table.index(cheap)] = share
            probabilities[chosen] = 1.0 - share
    return TargetChoice(tuple(probabilities), verdict.quality, costs, verdict.category)
