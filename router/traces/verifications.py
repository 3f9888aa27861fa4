"""The verifications table: each verified cheap answer's confidence and check result.

Answers whose checks came with their /verify are the evidence the acceptance threshold is
learned from (`router.decision.acceptance`); the table keeps it across restarts. The SQL is this
module's own, through `TraceStore.query` and `TraceStore.write`.
"""

from __future__ import annotations

import time

from router.traces.db import insert_sql
from router.traces.store import TraceStore

COLUMNS = ("decision_id", "created_at", "category", "logprob_mean", "passed", "action")

Observation = tuple[str, float, float]  # (category, logprob_mean, passed 0/1)


class VerificationRecords:
    """Verified answers as the store holds them."""

    def __init__(self, store: TraceStore):
        self.store = store

    def add(self, decision_id: str, category: str, logprob_mean: float, passed: bool | None,
            action: str) -> bool:
        """Record one verified answer; False when the decision was verified before (the first
        verification stands)."""
        sql = insert_sql("verifications", COLUMNS, "decision_id")
        values = (decision_id, time.time(), category, logprob_mean,
                  None if passed is None else int(passed), action)
        return self.store.write(sql, values) == 1

    def observations(self, per_category: int) -> list[Observation]:
        """The newest `per_category` checked answers of each category, oldest first."""
        rows = self.store.query(
            "SELECT category, logprob_mean, passed FROM verifications WHERE passed IS NOT NULL "
            "ORDER BY created_at DESC")
        kept: dict[str, int] = {}
        out: list[Observation] = []
        for row in rows:
            seen = kept.get(row["category"], 0)
            if seen < per_category:
                kept[row["category"]] = seen + 1
                out.append((row["category"], float(row["logprob_mean"]), float(row["passed"])))
        return out[::-1]
