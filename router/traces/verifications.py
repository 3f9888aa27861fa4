"""The verifications table: each verified cheap answer's confidence and check result.

Answers whose checks came with their /verify are the evidence the acceptance threshold is
learned from (`router.decision.acceptance`); the table keeps it across restarts. The SQL is this
module's own, through `TraceStore.query` and `TraceStore.write`.
"""

from __future__ import annotations

import time
from typing import Any

from router.traces.db import insert_sql
from router.traces.store import TraceStore

COLUMNS = ("decision_id", "created_at", "category", "logprob_mean", "passed", "action")

Observation = tuple[dict[str, Any], float, float]  # (decision row, logprob_mean, passed 0/1)


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

    def observations(self) -> list[Observation]:
        """Every checked answer, newest first: its decision's row (what its categories are
        made of), its logprob_mean and whether it passed."""
        rows = self.store.query(
            "SELECT v.logprob_mean, v.passed, d.decision_id, d.api_key, d.role, d.task, d.step, "
            "d.embedding FROM verifications v JOIN decisions d ON d.decision_id = "
            "v.decision_id WHERE v.passed IS NOT NULL ORDER BY v.created_at DESC")
        return [(row, float(row["logprob_mean"]), float(row["passed"])) for row in rows]
