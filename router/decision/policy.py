"""The decision, separate from the learning: scores + tier table + rules + one knob -> a tier.

Pure functions, no heavy imports; the service and the offline evaluator both call `decide`,
so what is evaluated offline is exactly what runs online. The steps, in this order:

1. **forced**: a valid ``tier`` in the request wins outright (reason ``forced``).
2. **classifier**: the cheapest tier whose score is at least ``quality_target``; if none is,
   the tier with the highest score (reason ``classifier``).
3. **task rules**: the config maps an agent's ``task`` to a fixed tier or a floor tier
   (reason ``task_rule`` when it changed the choice).
4. **eligibility**: tiers whose context window cannot hold the estimated input plus the
   expected output, and tiers without the ``tools`` capability when the call carries tools,
   are skipped by moving up to the next eligible stronger tier, or, if there is none, to the
   strongest eligible one (reason ``context_upgrade``).
5. **budget**: if ``max_cost_usd`` is set and the chosen tier's estimated cost exceeds it,
   the eligible tier with the highest score among those that fit (reason ``budget``); if none
   fits, the cheapest eligible tier, saying so. The caller's cap is explicit, so it wins over
   task rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from router.config import TaskRule, TierConfig


@dataclass(frozen=True)
class CallFacts:
    """What the policy needs to know about a call besides the scores."""

    tokens_in: int
    expected_tokens_out: int
    has_tools: bool = False
    task: str | None = None
    forced_tier: str | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class Choice:
    tier: str
    reason: str
    model: str
    fallbacks: list[str]
    estimated_cost_usd: float
    detail: str | None = None


def threshold_choice(scores: Sequence[float], quality_target: float) -> int:
    """Index of the cheapest tier whose score reaches the target, else of the best score."""
    for i, score in enumerate(scores):
        if score >= quality_target:
            return i
    return max(range(len(scores)), key=lambda i: (scores[i], i))


def decide(
    scores: Mapping[str, float],
    tiers: Sequence[TierConfig],
    quality_target: float,
    facts: CallFacts,
    task_rules: Mapping[str, TaskRule] | None = None,
) -> Choice:
    """Apply steps 1-5 of the module docstring; `tiers` are cheapest first."""
    names = [t.name for t in tiers]
    if facts.forced_tier is not None:
        return _choice(tiers, names.index(facts.forced_tier), "forced", facts)

    index = threshold_choice([scores[n] for n in names], quality_target)
    reason, detail = "classifier", None

    rule = (task_rules or {}).get(facts.task) if facts.task else None
    if rule is not None:
        floor = rule.min_tier or names[0]  # the config holds exactly one of tier / min_tier
        ruled = names.index(rule.tier) if rule.tier else max(index, names.index(floor))
        if ruled != index:
            index, reason = ruled, "task_rule"
            kind = "tier" if rule.tier else "at least"
            detail = f"task '{facts.task}' maps to {kind} '{names[ruled]}'"

    eligible = [i for i, t in enumerate(tiers) if _eligible(t, facts)]
    if index not in eligible and eligible:
        stronger = [i for i in eligible if i > index]
        index = stronger[0] if stronger else eligible[-1]
        reason = "context_upgrade"
        detail = (
            f"needs {facts.tokens_in + facts.expected_tokens_out} tokens of context"
            + (" and tool support" if facts.has_tools else "")
        )

    if facts.max_cost_usd is not None and _cost(tiers[index], facts) > facts.max_cost_usd:
        pool = eligible or list(range(len(tiers)))
        fits = [i for i in pool if _cost(tiers[i], facts) <= facts.max_cost_usd]
        if fits:
            index = max(fits, key=lambda i: (scores[names[i]], -i))
            detail = f"the best tier within max_cost_usd={facts.max_cost_usd}"
        else:
            index = min(pool, key=lambda i: _cost(tiers[i], facts))
            detail = f"no tier fits max_cost_usd={facts.max_cost_usd}; the cheapest instead"
        reason = "budget"

    return _choice(tiers, index, reason, facts, detail, eligible)


def _eligible(tier: TierConfig, facts: CallFacts) -> bool:
    fits = tier.context_window >= facts.tokens_in + facts.expected_tokens_out
    return fits and (not facts.has_tools or "tools" in tier.capabilities)


def _cost(tier: TierConfig, facts: CallFacts) -> float:
    return tier.estimate_cost(facts.tokens_in, facts.expected_tokens_out)


def _choice(
    tiers: Sequence[TierConfig],
    index: int,
    reason: str,
    facts: CallFacts,
    detail: str | None = None,
    eligible: Sequence[int] | None = None,
) -> Choice:
    """The chosen tier's first model; fallbacks: its other models, then stronger tiers'."""
    tier = tiers[index]
    stronger = [
        m for i in range(index + 1, len(tiers)) if eligible is None or i in eligible
        for m in tiers[i].models
    ]
    return Choice(
        tier=tier.name,
        reason=reason,
        model=tier.models[0],
        fallbacks=[*tier.models[1:], *stronger],
        estimated_cost_usd=_cost(tier, facts),
        detail=detail,
    )
