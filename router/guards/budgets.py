"""Spending limits per role or per API key over calendar periods: prefer cheaper tiers when low,
refuse when spent.

The tracker keeps the spend of the current period in memory, so `/route` never queries the
database: a decision adds its estimated cost, its feedback replaces that with the real cost,
and a background refresh re-reads the store (which also counts other replicas' traffic when
they share a PostgreSQL store). A period starts at the top of the UTC hour, day, ISO week
(Monday) or month; spend resets with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from router.config import BudgetConfig
from router.decision.policy import LowBudget
from router.errors import BudgetExhausted


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


class BudgetTracker:
    """Spend per budget in its current period; thread-safe; reconfigurable on reload."""

    def __init__(self, budgets: Sequence[BudgetConfig], clock: Callable[[], float] = time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._budgets: list[BudgetConfig] = []
        self._spent: dict[str, tuple[float, float]] = {}  # name -> (period start, usd)
        self.configure(budgets)

    def configure(self, budgets: Sequence[BudgetConfig]) -> None:
        """New budget list; the spend of budgets that keep their name and period is kept."""
        with self._lock:
            old = {b.name: b for b in self._budgets}
            self._budgets = list(budgets)
            self._spent = {b.name: self._spent[b.name] for b in self._budgets
                           if b.name in self._spent and old[b.name].period == b.period}

    @property
    def budgets(self) -> list[BudgetConfig]:
        return list(self._budgets)

    def load(self, spent_since: Callable[[BudgetConfig, float], float]) -> None:
        """Replace in-memory spend with the store's: `spent_since(budget, period_start)`."""
        now = self.clock()
        fresh = {}
        for b in self.budgets:
            start, _ = period_bounds(b.period, now)
            fresh[b.name] = (start, float(spent_since(b, start)))
        with self._lock:
            self._spent.update(fresh)

    def add(self, role: str | None, usd: float, api_key: str | None = None) -> None:
        """Count `usd` (negative to correct an estimate) against every budget of the call."""
        if (role is None and api_key is None) or usd == 0:
            return
        now = self.clock()
        with self._lock:
            for b in self._budgets:
                if b.applies_to(role, api_key):
                    start, spent = self._current(b, now)
                    self._spent[b.name] = (start, max(spent + usd, 0.0))

    def states(self, role: str | None, api_key: str | None = None) -> list[BudgetState]:
        if role is None and api_key is None:
            return []
        now = self.clock()
        with self._lock:
            out = []
            for b in self._budgets:
                if b.applies_to(role, api_key):
                    start, spent = self._current(b, now)
                    out.append(BudgetState(b, spent, period_bounds(b.period, now)[1]))
            return out

    def _current(self, budget: BudgetConfig, now: float) -> tuple[float, float]:
        start, _ = period_bounds(budget.period, now)
        recorded_start, spent = self._spent.get(budget.name, (start, 0.0))
        return (start, spent) if recorded_start == start else (start, 0.0)

    def check(self, role: str | None, api_key: str | None = None) -> None:
        """Raise BudgetExhausted (-> 402) when a budget of the call's role or key is spent."""
        for s in self.states(role, api_key):
            if s.state == "spent":
                raise BudgetExhausted(s.budget.name, s.budget.limit_usd, s.spent_usd,
                                      iso(s.resets_at))

    def low(self, role: str | None, api_key: str | None = None) -> LowBudget | None:
        """A snapshot of the low budget with the lowest fallback knob, if any budget is low."""
        lows = [s for s in self.states(role, api_key) if s.state == "low"]
        if not lows:
            return None
        lowest = min(lows, key=lambda s: s.budget.low_quality_target)
        return LowBudget(lowest.budget, lowest.spent_usd)
