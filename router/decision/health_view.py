"""The health step of a decision (`health_step`), what it reads, and its small helpers.

The step skips models whose circuit is open, moves off a tier that is down, and puts the
fastest model first for a latency-sensitive call. Pure, like the rest of the policy: it reads a
`HealthView`, a snapshot of the serving layer's `ModelHealth` (router/serving/model_health.py) taken
for the decision, with the one random number a half-open model's probe needs already drawn.
The order of the chain is kept: the first usable model of the chosen tier serves; skipped
models go to the end of the fallbacks (a last resort, never first). A tier with no usable model
moves the decision to the next stronger tier that can serve the call (reason
``health_upgrade``); if there is none, to the strongest usable weaker tier (reason
``degraded``). A forced tier, a fixed task rule, a task rule's floor, the caller's ceiling and
``max_cost_usd`` are never crossed for it: then `NoHealthyModel` (503) names the tier and when
the first circuit will be probed again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from router.config import TierConfig
from router.decision.choice import CallFacts, Choice, TierTable, at_tier, usable_first
from router.errors import NoHealthyModel
from router.schemas import CircuitState, Reason


@dataclass(frozen=True)
class ModelState:
    """One model's health as the decision reads it (defaults: nothing known, closed)."""

    state: CircuitState = "closed"
    calls: int = 0
    errors: int = 0
    latency_calls: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    retry_at: float | None = None  # open: when probing starts (epoch seconds)
    why: str | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


CLOSED = ModelState()


@dataclass(frozen=True)
class HealthView:
    """Every known model's state at `at` (epoch seconds), and this decision's probe draw."""

    models: Mapping[str, ModelState] = field(default_factory=dict)
    at: float = 0.0
    probe_share: float = 0.0
    min_calls: int = 1  # latency samples before a model's latency is trusted
    probe: float = 1.0  # uniform [0, 1): below probe_share, a half-open model is probed

    def of(self, model: str) -> ModelState:
        return self.models.get(model, CLOSED)

    def usable(self, model: str) -> bool:
        state = self.of(model).state
        return state == "closed" or (state == "half_open" and self.probe < self.probe_share)


def skipped_why(view: HealthView, model: str) -> str:
    """'gpt-4.1-nano (circuit open: 5 of 5 calls failed ...; probed again in 12 s)'."""
    s = view.of(model)
    if s.state == "half_open":
        return f"{model} (circuit half-open: probed on {view.probe_share:g} of calls)"
    wait = "" if s.retry_at is None else f"; probed again in {max(0, s.retry_at - view.at):.0f} s"
    return f"{model} (circuit open: {s.why or 'too many failures'}{wait})"


def latency_order(models: list[str], view: HealthView) -> list[str]:
    """Lowest trusted median latency first (p95, then the configured order, break ties). A
    model with fewer than `min_calls` latency samples in the window goes before the measured
    ones, in the configured order: otherwise a model behind a healthy one would never be
    measured, and a latency-sensitive call would never learn that it is faster."""
    def key(item: tuple[int, str]) -> tuple[bool, float, float, int]:
        i, m = item
        s = view.of(m)
        if s.p50_ms is None or s.latency_calls < view.min_calls:
            return (False, 0.0, 0.0, i)
        return (True, s.p50_ms, s.p95_ms or 0.0, i)
    return [m for _, m in sorted(enumerate(models), key=key)]


def retry_after(view: HealthView, models: list[str]) -> int:
    """Seconds until the first of `models` is probed again (at least 1)."""
    times = [s.retry_at for s in (view.of(m) for m in models) if s.retry_at is not None]
    wait = min(times) - view.at if times else 1.0
    return max(1, math.ceil(wait))


def tier_down(view: HealthView, tier: TierConfig) -> bool:
    return not any(view.usable(m) for m in tier.models)


def unusable(view: HealthView | None) -> frozenset[str]:
    """The models this decision may not use (open circuits, half-open ones it does not
    probe): what a sticky run must leave."""
    if view is None:
        return frozenset()
    return frozenset(m for m in view.models if not view.usable(m))


def health_step(choice: Choice, facts: CallFacts, table: TierTable, view: HealthView
                ) -> Choice:
    """The chosen tier's first usable model (the fastest first when latency-sensitive); a tier
    with none moves up, else down (`degraded`), within what the rules and the caller allow."""
    names = table.names
    index = table.index(choice.tier)
    if not tier_down(view, table.tiers[index]):
        return _within_tier(choice, table.tiers[index], facts, view)
    moved = _other_tier(index, facts, table, view)
    down = table.tiers[index].models
    why = "; ".join(skipped_why(view, m) for m in down)
    if moved is None:
        raise NoHealthyModel(choice.tier, _nowhere(choice.tier, facts, table) + f": {why}",
                             retry_after(view, down))
    reason: Reason = "health_upgrade" if moved > index else "degraded"
    way = "the next stronger tier" if moved > index else "the strongest usable weaker tier"
    other = at_tier(table, moved, reason, facts, choice.detail, table.serving(facts))
    other = replace(other.say(f"tier '{choice.tier}' is down ({why}): {way}, '{names[moved]}'"),
                    propensity=choice.propensity)
    return _within_tier(other, table.tiers[moved], facts, view)


def _other_tier(index: int, facts: CallFacts, table: TierTable, view: HealthView
                ) -> int | None:
    """The tier a decision moves to when its tier is down: the next stronger one the call
    allows, else the strongest weaker one; None when a forced tier or a fixed rule pins it."""
    if facts.forced_tier is not None or table.fixed(facts.task, facts.role, facts.key) is not None:
        return None
    floor = table.floor(facts.task, facts.role, facts.key)
    top = table.index(facts.ceiling_tier) if facts.ceiling_tier else len(table.tiers) - 1
    within_cap = set(table.serving(facts, within_cap=True))
    usable = [i for i in table.serving(facts) if i >= floor and not tier_down(view, table.tiers[i])]
    stronger = [i for i in usable if index < i <= top and i in within_cap]
    if stronger:
        return stronger[0]
    weaker = [i for i in usable if i < index]
    return weaker[-1] if weaker else None


def _nowhere(tier: str, facts: CallFacts, table: TierTable) -> str:
    """Why a down tier could not be left, for the 503."""
    if facts.forced_tier is not None:
        return f"tier '{tier}' is forced and has no healthy model"
    rule = table.rule(facts.task, facts.role, facts.key)
    if rule is not None and rule.tier is not None:
        return f"{rule.describe()} maps to tier '{tier}', which has no healthy model"
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
    chain = usable_first([*up, *[m for m in models if m not in up], *rest], view.usable)
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
