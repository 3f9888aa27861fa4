"""Spending limits over calendar periods, for a role, a key, a team of roles or keys, or the
whole fleet: prefer cheaper tiers when low, refuse when spent.

Spend lives in `Counters` sums, one per budget and period (`spend:<name>:<period>:<start>`):
this process's (`LocalCounters`) or, with ``shared_state``, Redis, which every replica adds to.
A decision adds its estimated cost, its feedback the difference to the real cost, and a
background refresh raises each sum to the trace store's figure (which survives a restart and,
on a shared PostgreSQL, counts other replicas' traffic), so `/route` never queries the
database. Every budget that covers a call is checked; the tightest decides: of the spent ones
the most overspent is named in the 402, of the low ones the one with least left sets the
knob. A period starts at the top of the UTC hour, day, ISO week (Monday) or month; a new
period is a new sum, so spend resets with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from router.config import BudgetConfig
from router.decision.policy import LowBudget
from router.errors import BudgetExhausted
from router.guards.counters import Counters, LocalCounters


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """(start, end) of the UTC calendar period holding `now`, as epoch seconds."""
    t = datetime.fromtimestamp(now, UTC)
    if period == "hour":
        start = t.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif period == "week":
        start = (t - timedelta(days=t.weekday())).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
        end = start + timedelta(days=7)
    elif period == "month":
        start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"The 'period' parameter must be hour, day, week or month. "
                         f"Got {period!r} instead.")
    return start.timestamp(), end.timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class BudgetState:
    budget: BudgetConfig
    spent_usd: float
    resets_at: float

    @property
    def state(self) -> Literal["ok", "low", "spent"]:
        if self.spent_usd >= self.budget.limit_usd:
            return "spent"
        if self.spent_usd >= self.budget.low_fraction * self.budget.limit_usd:
            return "low"
        return "ok"

    @property
    def fraction(self) -> float:
        """Share of the limit spent: the larger, the tighter the budget."""
        return self.spent_usd / self.budget.limit_usd


class BudgetTracker:
    """Spend per budget in its current period; thread-safe; reconfigurable on reload."""

    def __init__(self, budgets: Sequence[BudgetConfig], clock: Callable[[], float] = time.time,
                 counters: Counters | None = None):
        self.clock = clock
        self.counters: Counters = counters if counters is not None else LocalCounters(clock)
        self._budgets: tuple[BudgetConfig, ...] = ()
        self._seen: dict[str, float] = {}  # sum key -> last value read (for `low`)
        self.configure(budgets)

    def configure(self, budgets: Sequence[BudgetConfig]) -> None:
        """New budget list; a budget that keeps its name and period keeps its spend."""
        self._budgets = tuple(budgets)

    @property
    def budgets(self) -> list[BudgetConfig]:
        return list(self._budgets)

    def covering(self, role: str | None, api_key: str | None) -> list[BudgetConfig]:
        """Every budget a call with this role and key counts against."""
        return [b for b in self._budgets if b.applies_to(role, api_key)]

    def key(self, budget: BudgetConfig, now: float) -> str:
        start, _ = period_bounds(budget.period, now)
        return f"spend:{budget.name}:{budget.period}:{int(start)}"

    def load(self, spent_since: Callable[[BudgetConfig, float], float]) -> None:
        """Raise each budget's spend to the store's: `spent_since(budget, period_start)`."""
        now = self.clock()
        values = {}
        for b in self._budgets:
            start, _ = period_bounds(b.period, now)
            values[self.key(b, now)] = float(spent_since(b, start))
        self.counters.floor(values)

    def add(self, role: str | None, usd: float, api_key: str | None = None) -> None:
        """Count `usd` (negative to correct an estimate) against every budget of the call."""
        covering = self.covering(role, api_key)
        if not covering or usd == 0:
            return
        now = self.clock()
        keys = [self.key(b, now) for b in covering]
        self._remember(keys, self.counters.add(dict.fromkeys(keys, usd)))

    def add_own(self, api_key: str, usd: float) -> None:
        """Count `usd` only against the budgets of `api_key` alone (a trace without a decision:
        what it reports is its caller's word, which must not spend what other keys share)."""
        own = [b for b in self._budgets if not b.role_set and b.key_set == {api_key}]
        if not own or usd == 0:
            return
        now = self.clock()
        keys = [self.key(b, now) for b in own]
        self._remember(keys, self.counters.add(dict.fromkeys(keys, usd)))

    def states(self, role: str | None, api_key: str | None = None) -> list[BudgetState]:
        """The covering budgets' spend, read now."""
        covering = self.covering(role, api_key)
        now = self.clock()
        keys = [self.key(b, now) for b in covering]
        return self.judge(covering, self.counters.get(keys) if keys else (), now)

    def judge(self, covering: Sequence[BudgetConfig], values: Sequence[float],
              now: float) -> list[BudgetState]:
        """The states of `covering` budgets from their spend `values` (remembered for `low`)."""
        self._remember([self.key(b, now) for b in covering], values)
        return [BudgetState(b, v, period_bounds(b.period, now)[1])
                for b, v in zip(covering, values, strict=True)]

    def check(self, role: str | None, api_key: str | None = None) -> None:
        """Raise BudgetExhausted (-> 402) when a budget that covers the call is spent."""
        refuse(self.states(role, api_key))

    def low(self, role: str | None, api_key: str | None = None) -> LowBudget | None:
        """A snapshot of the tightest low budget, if any is low; read from the spend seen last
        (the check before this decision read it), so a decision costs no extra round trip."""
        covering = self.covering(role, api_key)
        if not covering:
            return None
        now = self.clock()
        keys = [self.key(b, now) for b in covering]
        if any(k not in self._seen for k in keys):
            states = self.states(role, api_key)
        else:
            states = [BudgetState(b, self._seen[k], 0.0) for b, k in zip(covering, keys,
                                                                          strict=True)]
        lows = [s for s in states if s.state == "low"]
        if not lows:
            return None
        tightest = max(lows, key=lambda s: s.fraction)
        return LowBudget(tightest.budget, tightest.spent_usd)

    def _remember(self, keys: Sequence[str], values: Sequence[float]) -> None:
        if len(self._seen) > 10_000:  # old periods' keys: forget them all, re-read on demand
            self._seen = {}
        self._seen.update(zip(keys, values, strict=True))


def refuse(states: Sequence[BudgetState]) -> None:
    """BudgetExhausted naming the most overspent of the spent budgets, if one is spent."""
    spent = [s for s in states if s.state == "spent"]
    if spent:
        worst = max(spent, key=lambda s: s.fraction)
        raise BudgetExhausted(worst.budget.name, worst.budget.limit_usd, worst.spent_usd,
                              iso(worst.resets_at))


def spent_in_store(rows: Callable[[str, float, bool], list[dict]], budget: BudgetConfig,
                   since: float) -> float:
    """What the trace store says a budget spent since `since`; `rows(by, since, keyed_traces)`
    is `TraceStore.spend` (rows with `key` and `cost_usd`). A key's outcomes posted without a
    decision count only toward a budget of that key alone (`BudgetTracker.add_own`)."""
    own = bool(budget.key_set) and len(budget.key_set) == 1 and not budget.role_set
    if budget.role_set:
        return sum(r["cost_usd"] for r in rows("role", since, False)
                   if r["key"] in budget.role_set)
    if budget.key_set:
        return sum(r["cost_usd"] for r in rows("api_key", since, own)
                   if r["key"] in budget.key_set)
    return sum(r["cost_usd"] for r in rows("role", since, False))
