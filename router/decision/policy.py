"""The decision, separate from the learning: scores + tier table + rules + one knob -> a tier.

Pure functions, no heavy imports; the service and the offline evaluator both call `decide`,
so what is evaluated offline is exactly what runs online. The steps, in this order:

1. **forced**: a valid ``tier`` in the request wins outright (reason ``forced``).
2. **classifier**: the cheapest tier whose lower bound of quality relative to the strongest
   tier, from the learned map (router/decision/learned_map.py: the call's category, its own
   score, the cold rule), is at least ``quality_target``; without a map's verdict, the cheapest
   tier whose predicted quality is at least ``quality_target`` times the best tier's (reason
   ``classifier``). The knob is relative on purpose: on traffic unlike the training data every
   tier's predicted quality sinks, and an absolute bar then sits above all of them and sends
   everything to the dearest tier; the ratio between tiers is what carries across domains.
   Ties go to the cheaper tier.
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

Step 2 is one strategy, `bound_pick` (any `TierPick` can stand in for it): scores, the tier
table and the call's facts (with the learned map's verdict) in, (tier index, reason, detail)
out. A call whose ceiling (the caller's own
model's tier) and the tiers below it cannot serve it is refused (`RequestLimitError` on
``model``, naming the capability or the context and the ceiling): the caller's model is never
exceeded.

The rest of a served decision (a low budget's lower knob: `budget_step`; exploration:
`explore_step`; model health; sticky runs; the degraded path) is applied after `decide` by
the one pipeline, `router.decision.pipeline.choose`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from router.config import BudgetConfig
from router.decision.choice import CallFacts, Choice, TierTable, at_tier, cost, force
from router.errors import RequestLimitError
from router.schemas import Reason

RELATIVE_TOLERANCE = 1e-9  # a tier exactly at the bar passes despite float rounding

Pick = tuple[int, Reason, str | None]  # (tier index, reason, detail)


class TierPick(Protocol):
    """Step 2, scores -> tier: (n_tiers,) scores in the table's order -> a `Pick`."""

    def __call__(self, scores: Sequence[float], table: TierTable, quality_target: float,
                 facts: CallFacts) -> Pick: ...


def threshold_choice(scores: Sequence[float], quality_target: float) -> int:
    """Index of the cheapest tier whose score is at least ``quality_target`` x the best score.

    The best-scoring tier always passes (``quality_target`` <= 1), so there is always an answer;
    scanning cheapest first sends ties to the cheaper tier. Exactly 1 ("accept no loss at
    all") is the strongest tier: predictions are uncertain, and without this end the knob
    could not reach always-strongest quality wherever the model rates a cheaper tier as high
    (capping the scores to make them monotone instead cost 0.025 leave-one-dataset-out APGR).
    """
    if quality_target >= 1.0:
        return len(scores) - 1
    bar = quality_target * max(scores) - RELATIVE_TOLERANCE
    for i, score in enumerate(scores):
        if score >= bar:
            return i
    return len(scores) - 1  # unreachable for finite scores


def threshold_pick(scores: Sequence[float], table: TierTable, quality_target: float,
                   facts: CallFacts) -> Pick:
    """Step 2 on the scores alone: `threshold_choice`, reason ``classifier``."""
    return threshold_choice(scores, quality_target), "classifier", None


def bound_pick(scores: Sequence[float], table: TierTable, quality_target: float,
               facts: CallFacts) -> Pick:
    """The shipped step 2: the learned map's verdict on the call (`facts.learned`,
    router/decision/learned_map.py), the cheapest tier whose lower bound of quality relative to
    the strongest tier is at least ``quality_target``, saying which category decided (or that
    none could yet); without a verdict, `threshold_pick`."""
    learned = facts.learned
    if learned is None:
        return threshold_pick(scores, table, quality_target, facts)
    return threshold_choice(learned.bounds, quality_target), "classifier", learned.detail


def decide(
    scores: Mapping[str, float],
    table: TierTable,
    quality_target: float,
    facts: CallFacts,
    pick: TierPick = bound_pick,
) -> Choice:
    """Apply steps 1-5 of the module docstring."""
    names = table.names
    if facts.forced_tier is not None:
        return force(table, facts.forced_tier, "forced", facts)

    index, reason, detail = pick([scores[n] for n in names], table, quality_target, facts)

    rule = table.rule(facts.task, facts.role, facts.key)
    if rule is not None:
        fixed = rule.tier
        floor = table.index(rule.min_tier or names[0])
        ruled = table.index(fixed) if fixed else max(index, floor)
        if ruled != index:
            index, reason = ruled, "task_rule"
            kind = "tier" if fixed else "at least"
            detail = f"{rule.describe()} maps to {kind} '{names[ruled]}'"

    eligible = table.serving(facts)
    original = index
    if index not in eligible and eligible:
        stronger = [i for i in eligible if i > index]
        index = stronger[0] if stronger else eligible[-1]
        reason = "context_upgrade"
        needed = sorted(facts.capabilities)
        detail = (
            f"needs {facts.tokens} tokens of context"
            + (f" and {', '.join(needed)}" if needed else "")
        )
        if index < original:
            reason = "context_downgrade"
            detail += f"; only '{names[index]}' can serve it"

    if facts.ceiling_tier is not None:
        ceiling = table.index(facts.ceiling_tier)
        allowed = [i for i in eligible if i <= ceiling]
        if not allowed:
            raise _unservable(table, facts)
        if index > ceiling:
            index, reason = allowed[-1], "ceiling"
            detail = (f"the requested model is tier '{facts.ceiling_tier}': never a dearer "
                      "tier")

    if facts.max_cost_usd is not None and cost(table.tiers[index], facts) > facts.max_cost_usd:
        pool = eligible or list(range(len(table.tiers)))
        fits = [i for i in pool if cost(table.tiers[i], facts) <= facts.max_cost_usd]
        if fits:
            index = max(fits, key=lambda i: (scores[names[i]], -i))
            detail = f"the best tier within max_cost_usd={facts.max_cost_usd}"
        else:
            index = min(pool, key=lambda i: cost(table.tiers[i], facts))
            detail = f"no tier fits max_cost_usd={facts.max_cost_usd}; the cheapest instead"
        reason = "budget"

    return at_tier(table, index, reason, facts, detail, eligible)


def _unservable(table: TierTable, facts: CallFacts) -> RequestLimitError:
    """The 422 of a call that neither its ceiling's tier nor a cheaper one can serve."""
    ceiling = facts.ceiling_tier
    assert ceiling is not None
    tier = table.tier(ceiling)
    lacks = sorted(facts.capabilities - set(tier.capabilities))
    wants = [f"the {', '.join(repr(c) for c in lacks)} "
             f"capabilit{'ies' if len(lacks) > 1 else 'y'}"] if lacks else []
    if facts.tokens > tier.context_window:
        wants.append(f"{facts.tokens} tokens of context (tier '{ceiling}' holds "
                     f"{tier.context_window})")
    if not wants:  # the ceiling tier could, a cheaper one is not the question: never reached
        wants.append("what no tier up to it offers")
    named = f"{facts.ceiling_model!r} (tier '{ceiling}')" if facts.ceiling_model else (
        f"tier '{ceiling}'")
    return RequestLimitError(
        "model", f"this call needs {' and '.join(wants)}, which the requested model {named} "
        "and the tiers below it lack; the router never routes above the caller's model "
        "(name a model of a tier that can serve the call, or omit model)", ceiling)


@dataclass(frozen=True)
class LowBudget:
    """A snapshot of the one budget of the call that is low: what the budget step needs."""

    budget: BudgetConfig
    spent_usd: float


@dataclass(frozen=True)
class ExplorationDraw:
    """A uniform [0, 1) number from the service's seeded generator, and the most a call may
    be explored (`exploration_rate`, the cap of the learned map's chances)."""

    rate: float
    explore: float  # below the chances' running total: that tier


NOT_EXPLORED: frozenset[Reason] = frozenset({"forced", "degraded", "budget"})


def budget_step(
    choice: Choice, low: LowBudget, scores: Mapping[str, float], table: TierTable,
    quality_target: float, facts: CallFacts, pick: TierPick = bound_pick,
) -> Choice:
    """Re-decide with the budget's lower knob; keep it (reason `budget`) if it is cheaper."""
    knob = min(quality_target, low.budget.low_quality_target)
    cheaper = decide(scores, table, knob, facts, pick)
    if table.index(cheaper.tier) >= table.index(choice.tier):
        return choice
    b = low.budget
    detail = (f"budget '{b.name}' is low ({low.spent_usd:.4f} of {b.limit_usd:.4f} USD); "
              f"quality_target {knob}")
    return replace(cheaper, reason="budget", detail=detail)


def explore_step(
    choice: Choice, facts: CallFacts, table: TierTable, draw: ExplorationDraw
) -> Choice:
    """Another allowed tier, with the probability the learned map's verdict gives it (Thompson
    sampling where a cheaper tier's bound is near the target, capped in expected quality cost,
    and probes of the strongest tier where a category moved below it), and its propensity.

    The learned map's fractional allowance (`Verdict.split`: a share of a category's calls to
    a cheaper tier whose bound is below the target) takes the same draw after exploration's
    chances: reason ``classifier``, the map's detail, and as propensity the tier's whole
    probability. It already tries that tier, so exploration of it counts only beyond the share
    (the tier's probability is the larger of the two, not their sum): exploration's cost does
    not stack on the allowance, which spends the target's whole margin.

    A router that only sees the outcomes of the tiers it chose cannot learn that a cheaper
    tier would have done; the propensity lets learning, retraining and off-policy estimates
    weight each outcome by 1/propensity. Never explored: a call without a verdict, forced
    tiers, fixed task rules, degraded and budget decisions. Never explored to: a tier below a
    task rule's minimum, one that cannot hold the call (context, tools), one over the call's
    ``max_cost_usd``.
    """
    learned = facts.learned
    if learned is None or choice.reason in NOT_EXPLORED:
        return replace(choice, propensity=1.0)
    others = alternatives(choice, facts, table)
    chances = {tier: learned.explore[table.index(tier)] for tier in others}
    cheap, share = allowance(choice, learned.split, table, others)
    kept = 0.0  # the map's own share to the cheaper tier
    if cheap is not None:  # it already tries that tier: exploration is only what exceeds it
        kept = (1.0 - sum(c for tier, c in chances.items() if tier != cheap)) * share
        chances[cheap] = max(chances[cheap] - kept, 0.0)
    edge, reach = sum(chances.values()), 0.0
    for tier in others:
        chance = chances[tier]
        reach += chance
        if chance > 0 and draw.explore < reach:
            detail = f"exploring: {tier} instead of {choice.tier} (probability {chance:.3g})"
            total = chance + (kept if tier == cheap else 0.0)
            return replace(force(table, tier, "explore", facts, detail), propensity=total)
    if cheap is not None and draw.explore < edge + kept:
        return replace(force(table, cheap, choice.reason, facts, choice.detail),
                       propensity=kept + chances[cheap])
    return replace(choice, propensity=1.0 - edge - kept)


def allowance(choice: Choice, split: tuple[int, int, float] | None, table: TierTable,
              others: Sequence[str]) -> tuple[str | None, float]:
    """The map's fractional allowance for this call, (cheaper tier, share), if the map's rule
    chose its base tier and the call may go to the cheaper one (one of `others`,
    `alternatives`); else (None, 0). Off-policy estimates read it as the map's own split."""
    if split is None or choice.reason != "classifier":
        return None, 0.0
    base, cheap, share = split
    name = table.names[cheap]
    if table.index(choice.tier) != base or name not in others:
        return None, 0.0
    return name, share


def alternatives(choice: Choice, facts: CallFacts, table: TierTable) -> list[str]:
    """Tiers other than the chosen one that the rules and the call allow."""
    if table.fixed(facts.task, facts.role, facts.key) is not None:
        return []
    floor = table.floor(facts.task, facts.role, facts.key)
    return [table.names[i] for i in table.serving(facts, within_cap=True)
            if i >= floor and table.names[i] != choice.tier]
