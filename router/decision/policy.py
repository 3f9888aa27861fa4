"""The decision, separate from the learning: scores + tier table + rules + one knob -> a tier.

Pure functions, no heavy imports; the service and the offline evaluator both call `decide`,
so what is evaluated offline is exactly what runs online. The steps, in this order:

1. **forced**: a valid ``tier`` in the request wins outright (reason ``forced``).
2. **classifier**: the cheapest tier whose predicted quality is at least ``quality_target``
   times the best tier's predicted quality (reason ``classifier``). The knob is relative on
   purpose: on traffic unlike the training data every tier's predicted quality sinks, and an
   absolute bar then sits above all of them and sends everything to the dearest tier; the ratio
   between tiers is what carries across domains. Ties go to the cheaper tier.
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

`choose` is what the service calls: `decide`, then a low budget's lower knob (`budget_step`),
then exploration (`explore_step`), then the models' health (`health_step`: skip a model whose
circuit is open, move off a tier that is down, fastest model first for a latency-sensitive
call; see router/decision/health_view.py). The state those read (budget spend, the exploration
random numbers, model health) lives in the serving layer; `choose` receives snapshots of it,
so the whole decision stays a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from router.config import BudgetConfig, Settings, TaskRule, TierConfig
from router.decision.health_view import (
    HealthView,
    latency_order,
    retry_after,
    skipped_why,
    tier_down,
)
from router.errors import NoHealthyModel


@dataclass(frozen=True)
class CallFacts:
    """What the policy needs to know about a call besides the scores."""

    tokens_in: int
    expected_tokens_out: int
    has_tools: bool = False
    needs: frozenset[str] = frozenset()  # capabilities beyond tools: json, vision, audio
    ceiling_tier: str | None = None  # the caller's own model's tier: never a dearer one
    task: str | None = None
    forced_tier: str | None = None
    max_cost_usd: float | None = None
    latency_sensitive: bool = False  # within the tier, the fastest observed model first


@dataclass(frozen=True)
class Choice:
    tier: str
    reason: str
    model: str
    fallbacks: list[str]
    estimated_cost_usd: float
    detail: str | None = None


RELATIVE_TOLERANCE = 1e-9  # a tier exactly at the bar passes despite float rounding


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
    original = index
    if index not in eligible and eligible:
        stronger = [i for i in eligible if i > index]
        index = stronger[0] if stronger else eligible[-1]
        reason = "context_upgrade"
        needed = sorted(facts.needs | ({"tools"} if facts.has_tools else set()))
        detail = (
            f"needs {facts.tokens_in + facts.expected_tokens_out} tokens of context"
            + (f" and {', '.join(needed)}" if needed else "")
        )
        if index < original:
            reason = "context_downgrade"
            detail += f"; only '{names[index]}' can serve it"

    if facts.ceiling_tier is not None and index > names.index(facts.ceiling_tier):
        ceiling = names.index(facts.ceiling_tier)
        allowed = [i for i in eligible if i <= ceiling] if eligible else [ceiling]
        if allowed:
            index, reason = allowed[-1], "ceiling"
            detail = (f"the requested model is tier '{facts.ceiling_tier}': never a dearer "
                      "tier")

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


def _eligible(tier: TierConfig, facts: CallFacts, within_cap: bool = False) -> bool:
    """The tier can hold the call (context, tools) and, with `within_cap`, fits its cost cap."""
    fits = tier.context_window >= facts.tokens_in + facts.expected_tokens_out
    ok = fits and (not facts.has_tools or "tools" in tier.capabilities)
    ok = ok and facts.needs <= set(tier.capabilities)
    if ok and within_cap and facts.max_cost_usd is not None:
        return _cost(tier, facts) <= facts.max_cost_usd
    return ok


def eligible(tier: TierConfig, facts: CallFacts) -> bool:
    """Can the tier serve the call: context, tools, capabilities, and its max_cost_usd."""
    return _eligible(tier, facts, within_cap=True)


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


@dataclass(frozen=True)
class LowBudget:
    """A snapshot of the one budget of the call that is low: what the budget step needs."""

    budget: BudgetConfig
    spent_usd: float


@dataclass(frozen=True)
class ExplorationDraw:
    """Two uniform [0, 1) numbers from the service's seeded generator, and the rate."""

    rate: float
    explore: float  # < rate: explore
    pick: float  # which alternative


NOT_EXPLORED = ("forced", "degraded", "budget")


def choose(
    scores: Mapping[str, float],
    settings: Settings,
    quality_target: float,
    facts: CallFacts,
    low: LowBudget | None = None,
    draw: ExplorationDraw | None = None,
    health: HealthView | None = None,
) -> tuple[Choice, float | None]:
    """The served decision: (choice, propensity). Propensity is None with exploration off;
    1 when health moved the decision to another tier (certain, given the health state)."""
    choice = decide(scores, settings.tiers, quality_target, facts, settings.task_rules)
    if low is not None and facts.forced_tier is None:
        choice = budget_step(choice, low, scores, settings, quality_target, facts)
    propensity = None
    if draw is not None:
        choice, propensity = explore_step(choice, facts, settings, draw)
    if health is None:
        return choice, propensity
    healthy = health_step(choice, facts, settings, health)
    if healthy.tier != choice.tier and propensity is not None:
        propensity = 1.0
    return healthy, propensity


def health_step(choice: Choice, facts: CallFacts, settings: Settings, view: HealthView
                ) -> Choice:
    """The chosen tier's first usable model (the fastest first when latency-sensitive); a tier
    with none moves up, else down (`degraded`), within what the rules and the caller allow."""
    names = settings.tier_names
    index = names.index(choice.tier)
    if not tier_down(view, settings.tiers[index]):
        return _within_tier(choice, settings.tiers[index], facts, view)
    moved = _other_tier(index, facts, settings, view)
    down = settings.tiers[index].models
    why = "; ".join(skipped_why(view, m) for m in down)
    if moved is None:
        raise NoHealthyModel(choice.tier, _nowhere(choice.tier, facts, settings) + f": {why}",
                             retry_after(view, down))
    reason = "health_upgrade" if moved > index else "degraded"
    way = "the next stronger tier" if moved > index else "the strongest usable weaker tier"
    detail = f"tier '{choice.tier}' is down ({why}): {way}, '{names[moved]}'"
    detail = f"{choice.detail}; {detail}" if choice.detail else detail  # what it was first
    eligible = [i for i, t in enumerate(settings.tiers) if _eligible(t, facts)]
    other = _choice(settings.tiers, moved, reason, facts, detail, eligible)
    return _within_tier(other, settings.tiers[moved], facts, view)


def _other_tier(index: int, facts: CallFacts, settings: Settings, view: HealthView
                ) -> int | None:
    """The tier a decision moves to when its tier is down: the next stronger one the call
    allows, else the strongest weaker one; None when a forced tier or a fixed rule pins it."""
    if facts.forced_tier is not None:
        return None
    names, tiers = settings.tier_names, settings.tiers
    rule = settings.task_rules.get(facts.task) if facts.task else None
    if rule is not None and rule.tier is not None:
        return None
    floor = names.index(rule.min_tier) if rule is not None and rule.min_tier else 0
    top = names.index(facts.ceiling_tier) if facts.ceiling_tier else len(tiers) - 1
    usable = [i for i, t in enumerate(tiers)
              if i >= floor and _eligible(t, facts) and not tier_down(view, t)]
    stronger = [i for i in usable if index < i <= top and _eligible(tiers[i], facts, True)]
    if stronger:
        return stronger[0]
    weaker = [i for i in usable if i < index]
    return weaker[-1] if weaker else None


def _nowhere(tier: str, facts: CallFacts, settings: Settings) -> str:
    """Why a down tier could not be left, for the 503."""
    if facts.forced_tier is not None:
        return f"tier '{tier}' is forced and has no healthy model"
    rule = settings.task_rules.get(facts.task) if facts.task else None
    if rule is not None and rule.tier is not None:
        return f"task '{facts.task}' maps to tier '{tier}', which has no healthy model"
    return f"tier '{tier}' has no healthy model and no other tier may serve the call"


def _within_tier(choice: Choice, tier: TierConfig, facts: CallFacts, view: HealthView
                 ) -> Choice:
    """The tier's usable models first (by latency when asked), skipped ones last. A probe of a
    half-open model puts it first: behind a healthy model it would never be tried."""
    models = latency_order(list(tier.models), view) if facts.latency_sensitive else tier.models
    up = [m for m in models if view.usable(m)]
    probed = [m for m in up if view.of(m).state == "half_open"]
    if probed:
        up = [probed[0], *[m for m in up if m != probed[0]]]
    rest = [m for m in choice.fallbacks if m not in tier.models]
    chain = [*up, *[m for m in rest if view.usable(m)],
             *[m for m in models if m not in up], *[m for m in rest if not view.usable(m)]]
    notes = []
    skipped = [m for m in models if m not in up]
    if skipped:
        notes.append("skipped " + ", ".join(skipped_why(view, m) for m in skipped))
    if view.of(chain[0]).state == "half_open":
        notes.append(f"probing {chain[0]} after its cooldown (circuit half-open)")
    if facts.latency_sensitive and models != list(tier.models):
        s = view.of(chain[0])
        notes.append(f"latency_sensitive: {chain[0]} first (median {s.p50_ms:.0f} ms)"
                     if s.p50_ms is not None and s.latency_calls >= view.min_calls else
                     f"latency_sensitive: {chain[0]} first (not yet measured)")
    if not notes and chain == [choice.model, *choice.fallbacks]:
        return choice
    detail = "; ".join(n for n in (choice.detail, *notes) if n)
    return replace(choice, model=chain[0], fallbacks=chain[1:], detail=detail or None)


def budget_step(
    choice: Choice, low: LowBudget, scores: Mapping[str, float], settings: Settings,
    quality_target: float, facts: CallFacts,
) -> Choice:
    """Re-decide with the budget's lower knob; keep it (reason `budget`) if it is cheaper."""
    knob = min(quality_target, low.budget.low_quality_target)
    cheaper = decide(scores, settings.tiers, knob, facts, settings.task_rules)
    names = settings.tier_names
    if names.index(cheaper.tier) >= names.index(choice.tier):
        return choice
    b = low.budget
    detail = (f"budget '{b.name}' is low ({low.spent_usd:.4f} of {b.limit_usd:.4f} USD); "
              f"quality_target {knob}")
    return replace(cheaper, reason="budget", detail=detail)


def explore_step(
    choice: Choice, facts: CallFacts, settings: Settings, draw: ExplorationDraw
) -> tuple[Choice, float]:
    """With probability ``draw.rate`` another allowed tier, uniformly; and its propensity.

    A router that only sees the outcomes of the tiers it chose cannot learn that a cheaper
    tier would have done; the propensity lets retraining and off-policy estimates weight each
    outcome by 1/propensity. Never explored: forced tiers, fixed task rules, degraded and
    budget decisions. Never explored to: a tier below a task rule's minimum, one that cannot
    hold the call (context, tools), one over the call's ``max_cost_usd``.
    """
    others = [] if choice.reason in NOT_EXPLORED else alternatives(choice, facts, settings)
    if not others:
        return choice, 1.0
    if draw.explore >= draw.rate:
        return choice, 1.0 - draw.rate
    tier = others[min(int(draw.pick * len(others)), len(others) - 1)]
    forced = decide({}, settings.tiers, 1.0, replace(facts, forced_tier=tier))
    detail = f"exploring: {tier} instead of {choice.tier} (rate {draw.rate})"
    return replace(forced, reason="explore", detail=detail), draw.rate / len(others)


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
            if i >= floor and t.name != choice.tier and _eligible(t, facts, within_cap=True)]
