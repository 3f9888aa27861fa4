"""What every step of a decision reads and returns: the call's facts, the tier table, a choice.

`TierTable` is the small part of the config a decision needs (the tiers, cheapest first, the
task rules and the safe tier), built once from `Settings` when a service is built. The helpers
here are the moves the steps share, each written once: the choice of a tier with its chain of
fallbacks (`at_tier`), forcing a tier whatever the scores say (`force`), the floor and the
fixed tier of a task rule (`TierTable.floor`, `TierTable.fixed`), whether a tier can serve a call
(`serves`), and a model chain with the unusable models last (`usable_first`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from router.config import Pin, Settings, TaskRule, TierConfig
from router.decision.learned_map import Verdict
from router.schemas import Reason


@dataclass(frozen=True)
class CallFacts:
    """What the policy needs to know about a call besides the scores."""

    tokens_in: int
    expected_tokens_out: int
    has_tools: bool = False
    needs: frozenset[str] = frozenset()  # capabilities beyond tools: json, vision, audio
    ceiling_tier: str | None = None  # the caller's own model's tier: never a dearer one
    ceiling_model: str | None = None  # the model the caller named, for the refusal's message
    task: str | None = None
    role: str | None = None
    key: str | None = None  # the API key's name, for pins on a key
    forced_tier: str | None = None
    max_cost_usd: float | None = None
    latency_sensitive: bool = False  # within the tier, the fastest observed model first
    learned: Verdict | None = None  # the learned map's bounds and exploration for this call

    @property
    def tokens(self) -> int:
        """The context the call needs: its input plus the expected output."""
        return self.tokens_in + self.expected_tokens_out

    @property
    def capabilities(self) -> frozenset[str]:
        """Every capability the call needs, tools included."""
        return self.needs | ({"tools"} if self.has_tools else frozenset())


@dataclass(frozen=True)
class Choice:
    """A decision: the tier, its first model and the chain after it, and why."""

    tier: str
    reason: Reason
    model: str
    fallbacks: list[str]
    estimated_cost_usd: float
    detail: str | None = None
    propensity: float | None = None  # P(this tier) under exploration; None when off

    def say(self, why: str) -> Choice:
        """The same choice with `why` added to its detail."""
        return replace(self, detail=f"{self.detail}; {why}" if self.detail else why)


@dataclass(frozen=True)
class TierTable:
    """The tiers (cheapest first), the task rules and the safe tier: what a decision reads of
    the config."""

    tiers: tuple[TierConfig, ...]
    task_rules: Mapping[str, TaskRule] = field(default_factory=dict)
    safe_tier: str | None = None
    pins: tuple[Pin, ...] = ()  # every task rule as a pin on its task first, then the pins
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(self.tiers))
        object.__setattr__(self, "task_rules", MappingProxyType(dict(self.task_rules)))
        object.__setattr__(self, "names", tuple(t.name for t in self.tiers))
        rules = tuple(Pin(task=task, tier=rule.tier, min_tier=rule.min_tier)
                      for task, rule in self.task_rules.items())
        object.__setattr__(self, "pins", rules + tuple(
            p for p in self.pins if p.task not in self.task_rules or p.role or p.key))

    @classmethod
    def of(cls, settings: Settings) -> TierTable:
        return cls(tuple(settings.tiers), settings.task_rules, settings.safe_tier,
                   tuple(settings.pins))

    def index(self, tier: str) -> int:
        return self.names.index(tier)

    def tier(self, name: str) -> TierConfig:
        return self.tiers[self.index(name)]

    def rule(self, task: str | None, role: str | None = None, key: str | None = None
             ) -> Pin | None:
        """The pin a call's signals fall under: the first fixed one that matches, else the
        matching floor of the strongest tier; None without one."""
        if not self.pins:
            return None
        matching = [p for p in self.pins if p.matches(key, role, task)]
        fixed = next((p for p in matching if p.tier is not None), None)
        if fixed is not None or not matching:
            return fixed
        return max(matching, key=lambda p: self.index(p.min_tier or self.names[0]))

    def fixed(self, task: str | None, role: str | None = None, key: str | None = None
              ) -> str | None:
        """The one tier a fixed pin maps the call to, else None."""
        rule = self.rule(task, role, key)
        return rule.tier if rule is not None else None

    def floor(self, task: str | None, role: str | None = None, key: str | None = None) -> int:
        """The index of the cheapest tier the call's pin allows (0 without a floor)."""
        rule = self.rule(task, role, key)
        if rule is None:
            return 0
        return self.index(rule.tier or rule.min_tier or self.names[0])

    def serving(self, facts: CallFacts, within_cap: bool = False) -> list[int]:
        """Indexes of the tiers that can serve the call (`serves`), cheapest first."""
        return [i for i, t in enumerate(self.tiers) if serves(t, facts, within_cap)]


def serves(tier: TierConfig, facts: CallFacts, within_cap: bool = False) -> bool:
    """The tier can hold the call (context, tools, capabilities) and, with `within_cap`,
    fits its max_cost_usd."""
    needs = facts.capabilities
    ok = tier.context_window >= facts.tokens and (not needs or needs <= set(tier.capabilities))
    if ok and within_cap and facts.max_cost_usd is not None:
        return cost(tier, facts) <= facts.max_cost_usd
    return ok


def cost(tier: TierConfig, facts: CallFacts) -> float:
    return tier.estimate_cost(facts.tokens_in, facts.expected_tokens_out)


def at_tier(
    table: TierTable,
    index: int,
    reason: Reason,
    facts: CallFacts,
    detail: str | None = None,
    allowed: Sequence[int] | None = None,
) -> Choice:
    """The choice of tier `index`: its first model; fallbacks: its other models, then the
    models of stronger tiers (only the `allowed` ones, when given)."""
    tier = table.tiers[index]
    stronger = [
        m for i in range(index + 1, len(table.tiers)) if allowed is None or i in allowed
        for m in table.tiers[i].models
    ]
    return Choice(
        tier=tier.name,
        reason=reason,
        model=tier.models[0],
        fallbacks=[*tier.models[1:], *stronger],
        estimated_cost_usd=cost(tier, facts),
        detail=detail,
    )


def force(table: TierTable, tier: str, reason: Reason, facts: CallFacts,
          detail: str | None = None) -> Choice:
    """Tier `tier` whatever the scores say, with every stronger tier's models as fallbacks."""
    return at_tier(table, table.index(tier), reason, facts, detail)


def usable_first(models: Iterable[str], usable: Callable[[str], bool]) -> list[str]:
    """`models` in their order with the unusable ones (open circuits) moved to the end: a last
    resort, never first."""
    chain = list(models)
    return [m for m in chain if usable(m)] + [m for m in chain if not usable(m)]
