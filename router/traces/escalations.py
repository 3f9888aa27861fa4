"""The escalations table: which decision each decision was escalated to, and why.

A decision is escalated from once. The row is written (durably, before the escalated decision
is made) with the decision escalated from as its key, so the insert is the claim: a second
escalation of the same decision finds the first, on this replica or another, before or after
a restart. The SQL is this module's own, through `TraceStore.query` and `TraceStore.write`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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
