"""Which decisions' answers were checked, and what each check adds to the map's check evidence.

A decision's answer is checked once: the first word on it stands (an escalation with a check's
reason, a /verify with check results, or a /feedback with ``check_passed``), later ones are
ignored. The claim is a row of the ``check_results`` table keyed by the decision, so it holds
across replicas and restarts. A passed answer's quality is labelled once too (``labelled``),
whichever comes first, the label or the check.

What a check adds is rows of ``learning_evidence`` whose tier is ``check:<tier>``
(router/decision/checks.py names the columns), for every category the call fell in (the
map's own paths, `evidence.categories_of`), so they decay, are forgotten and reset with the
map's evidence. The SQL is this module's own, through `TraceStore.query` and `TraceStore.write`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from router.config import LearningConfig
from router.decision.categories import Clusters, key_name
from router.decision.checks import CHECK_MARK, LABELLED, PASSED, PASSED_QUALITY, RUNS
from router.decision.learned_map import COLUMNS, TOTAL
from router.traces.db import insert_sql
from router.traces.evidence import Increment, categories_of
from router.traces.store import TraceStore

CLAIM_COLUMNS = ("decision_id", "created_at", "tier", "passed", "labelled")


def check_increments(decision: Mapping[str, Any], passed: bool, label: float | None,
                     tiers: Sequence[str], config: LearningConfig, clusters: Clusters | None
                     ) -> list[Increment]:
    """What one checked answer adds: a check run (passed or not) of the decision's tier, and
    a passed answer's `label` when known; nothing for a decision that cannot teach (a tier
    this config does not have, a degraded or shadow decision)."""
    values = [0.0] * len(COLUMNS)
    values[RUNS] = values[TOTAL] = 1.0
    values[PASSED] = float(passed)
    if passed and label is not None:
        values[LABELLED], values[PASSED_QUALITY] = 1.0, float(label)
    return _rows(decision, values, tiers, config, clusters)


def label_increments(decision: Mapping[str, Any], label: float, tiers: Sequence[str],
                     config: LearningConfig, clusters: Clusters | None) -> list[Increment]:
    """The quality label of an answer whose check passed before the label came."""
    values = [0.0] * len(COLUMNS)
    values[LABELLED], values[PASSED_QUALITY] = 1.0, float(label)
    return _rows(decision, values, tiers, config, clusters)


def _rows(decision: Mapping[str, Any], values: list[float], tiers: Sequence[str],
          config: LearningConfig, clusters: Clusters | None) -> list[Increment]:
    tier = decision.get("tier")
    if tier not in tiers or decision.get("reason") == "degraded" or decision.get("shadow"):
        return []
    namespace = key_name(decision.get("api_key"))
    return [(namespace, path, CHECK_MARK + str(tier), tuple(values))
            for path in categories_of(decision, config, clusters)]


class CheckRecords:
    """The check_results table: one claim per checked decision."""

    def __init__(self, store: TraceStore):
        self.store = store

    def claim(self, decision: Mapping[str, Any], passed: bool, labelled: bool) -> bool:
        """Record the decision's check result; False when it was checked before (the first
        result stands)."""
        sql = insert_sql("check_results", CLAIM_COLUMNS, "decision_id")
        values = (decision["decision_id"], time.time(), decision.get("tier"), int(passed),
                  int(passed and labelled))
        return self.store.write(sql, values) == 1

    def label(self, decision_id: str) -> bool:
        """Mark a passed answer's quality as labelled; True the first time only (then its
        label teaches the check evidence), False for an answer not checked or not passed."""
        waiting = "WHERE decision_id = ? AND passed = 1 AND labelled = 0"
        if not self.store.query(f"SELECT 1 AS one FROM check_results {waiting}", (decision_id,)):
            return False  # most labels: no write
        return self.store.write(f"UPDATE check_results SET labelled = 1 {waiting}",
                                (decision_id,)) == 1

    def stored_label(self, decision_id: str) -> float | None:
        """The decision's labelled outcome, if one came before its check result."""
        rows = self.store.query("SELECT quality FROM outcomes WHERE decision_id = ? AND "
                                "quality IS NOT NULL", (decision_id,))
        return float(rows[0]["quality"]) if rows else None
