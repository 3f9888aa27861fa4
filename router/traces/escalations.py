"""The escalations table: which decision each decision was escalated to, and why.

A decision is escalated from once. The row is written (durably, before the escalated decision
is made) with the decision escalated from as its key, so the insert is the claim: a second
escalation of the same decision finds the first, on this replica or another, before or after
a restart. The SQL is this module's own, through `TraceStore.query` and `TraceStore.write`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from router.config import Settings
from router.schemas import EscalationReport
from router.traces.db import insert_sql
from router.traces.store import TraceStore

COLUMNS = ("from_decision_id", "to_decision_id", "created_at", "attempt", "from_tier",
           "to_tier", "reason", "logprob_mean", "detail", "api_key", "run_id")


@dataclass(frozen=True)
class EscalationRow:
    """One escalation: from which decision (on which tier) to which, the why."""

    from_decision_id: str
    to_decision_id: str
    attempt: int
    from_tier: str
    reason: str
    to_tier: str | None = None
    logprob_mean: float | None = None
    detail: str | None = None
    api_key: str | None = None
    run_id: str | None = None
    created_at: float = 0.0

    def values(self) -> tuple[Any, ...]:
        created = self.created_at or time.time()
        return (self.from_decision_id, self.to_decision_id, created, self.attempt,
                self.from_tier, self.to_tier, self.reason, self.logprob_mean, self.detail,
                self.api_key, self.run_id)


class EscalationRecords:
    """Escalations as the store holds them."""

    def __init__(self, store: TraceStore):
        self.store = store

    def escalated_to(self, decision_id: str) -> str | None:
        """The decision `decision_id` was escalated to, if it was."""
        rows = self.store.query(
            "SELECT to_decision_id FROM escalations WHERE from_decision_id = ?", (decision_id,))
        return rows[0]["to_decision_id"] if rows else None

    def attempt_of(self, decision_id: str) -> int:
        """The decision's place in its call's chain: 1 unless it is an escalation."""
        rows = self.store.query(
            "SELECT attempt FROM escalations WHERE to_decision_id = ?", (decision_id,))
        return int(rows[0]["attempt"]) if rows else 1

    def claim(self, row: EscalationRow) -> str | None:
        """Write the escalation; None when it is the first from its decision, else the
        decision the first one went to (nothing written)."""
        sql = insert_sql("escalations", COLUMNS, "from_decision_id")
        if self.store.write(sql, row.values()) == 1:
            return None
        return self.escalated_to(row.from_decision_id) or row.to_decision_id

    def settle(self, from_decision_id: str, to_tier: str) -> None:
        """The tier the escalated decision went to, once it is made."""
        self.store.write("UPDATE escalations SET to_tier = ? WHERE from_decision_id = ?",
                         (to_tier, from_decision_id))

    def withdraw(self, row: EscalationRow) -> None:
        """Take back a claim whose decision could not be made (a 503): the decision may be
        escalated from again."""
        self.store.write(
            "DELETE FROM escalations WHERE from_decision_id = ? AND to_decision_id = ?",
            (row.from_decision_id, row.to_decision_id))


@dataclass(frozen=True)
class CallCost:
    """One call as the savings report reads it."""

    cost_usd: float  # reported, else estimated
    tokens_in: int
    tokens_out: int | None  # reported; None: the config's expected output
    wasted: bool  # escalated from: its answer failed
    first: bool  # not itself an escalation: a chain's first call


def escalation_report(calls: Sequence[CallCost], settings: Settings) -> EscalationReport:
    """Escalations, wasted spend and the saving net of it against always-strongest."""
    strongest = settings.tiers[-1]
    expected = settings.expected_output_tokens
    spent = sum(c.cost_usd for c in calls)
    wasted = [c for c in calls if c.wasted]
    always = sum(strongest.estimate_cost(c.tokens_in, expected if c.tokens_out is None
                                         else c.tokens_out) for c in calls if c.first)
    return EscalationReport(
        escalations=len(wasted), wasted_usd=round(sum(c.cost_usd for c in wasted), 8),
        calls=len(calls), spent_usd=round(spent, 8), always_strongest_usd=round(always, 8),
        saved_usd=round(always - spent, 8),
        saved_fraction=round((always - spent) / always, 6) if always > 0 else None)


# Every routed call of a period with what the report needs (shadow calls were not followed).
_CALLS = """
    SELECT COALESCE(o.cost_usd, d.estimated_cost_usd) AS cost,
           COALESCE(o.tokens_in, d.tokens_in) AS tokens_in, o.tokens_out,
           ef.to_decision_id AS escalated_to, et.from_decision_id AS escalated_from
    FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.decision_id
    LEFT JOIN escalations ef ON ef.from_decision_id = d.decision_id
    LEFT JOIN escalations et ON et.to_decision_id = d.decision_id
    WHERE d.shadow = 0 AND d.created_at >= ?"""


def period_calls(store: TraceStore, since: float | None) -> list[CallCost]:
    """The routed calls decided since `since` (every one when None)."""
    rows = store.read(_CALLS, (since if since is not None else 0.0,))
    return [CallCost(float(r["cost"]), int(r["tokens_in"] or 0), r["tokens_out"],
                     r["escalated_to"] is not None, r["escalated_from"] is None) for r in rows]
