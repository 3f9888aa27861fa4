"""The deployment's learned map while it serves: one frozen `LearnedMap`, replaced whole.

Decisions read `Learner.map` once per batch (one reference read, atomic in Python): they see
the map before a rebuild or the map after it, never a half-built one. The feedback path adds
each labelled outcome's evidence to the store (`observe`); a rebuild (`rebuild`, on the loop's
thread: at start, ``REBUILD_AFTER_S`` after new outcomes, and every ``learning.refresh_s`` so
replicas on one store converge to one map) reads the store's per-category sums, fits a new map
with `decision.learned_map.fit_map` (pure), with the check evidence of verifiable calls
(`decision.checks.fit_checks`) inside it, and swaps the reference. A restart loses nothing:
the sums are in the store; a store that has outcomes but no sums yet (written before the
table) is summed once from its outcomes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from router.config import LearningConfig
from router.decision.categories import Clusters
from router.decision.checks import CHECK_MARK, fit_checks
from router.decision.learned_map import LearnedMap, moved_categories
from router.decision.map_fit import empty_map, fit_map
from router.errors import StoreError
from router.traces.checks import CheckRecords, check_increments, label_increments
from router.traces.evidence import EvidenceStore, increments
from router.traces.store import TraceStore

log = logging.getLogger(__name__)

REBUILD_AFTER_S = 1.0  # a rebuild follows new outcomes this soon (on the loop's thread)


class Learner:
    """Holds the current map and keeps it in step with the store's evidence."""

    def __init__(self, config: LearningConfig, tiers: Sequence[str], dimension: int,
                 store: TraceStore, clock: Callable[[], float] = time.time,
                 centroids: np.ndarray | None = None, cut: str = ""):
        self.config = config
        self.tiers = tuple(tiers)
        self.dimension = dimension
        self.clock = clock
        self.clusters = (Clusters(config.cluster_bits, dimension, centroids, cut)
                         if config.cluster_bits else None)
        self.cut = self.clusters.cut if self.clusters is not None else ""
        self.evidence = EvidenceStore(store, config)
        self.checked = CheckRecords(store)
        self.map: LearnedMap = empty_map(self.tiers, config)  # swapped whole, never changed
        self._rebuilding = threading.Lock()
        self._new = 0  # outcomes observed since the last rebuild
        self._reset_at = 0.0

    @property
    def revision(self) -> int:
        return self.map.revision

    @property
    def stale(self) -> int:
        """Outcomes observed here since the last rebuild (not yet in the map)."""
        return self._new

    def start(self) -> Learner:
        """Sum an older store's outcomes once, then build the first map."""
        try:
            if self.evidence.is_empty():
                self._reset_at = self.evidence.store.learning_reset_at()
                read = self.evidence.backfill(self.tiers, self.clusters, self._reset_at)
                if read:
                    log.info("learned map: summed %d stored outcomes into its evidence", read)
        except StoreError as exc:
            log.warning("learned map: could not read the store's outcomes: %s", exc)
        self.rebuild()
        return self

    def observe(self, outcome: Mapping[str, Any], decision: Mapping[str, Any]) -> bool:
        """Add one labelled outcome of a routed decision to the store's evidence (the
        feedback path calls this once per outcome), and to the check evidence when the
        decision's answer passed its check unlabelled; False when it cannot teach."""
        rows = increments(outcome, decision, self.tiers, self.config, self.clusters)
        if not rows:
            return False
        label, decision_id = outcome.get("quality"), decision.get("decision_id")
        if label is not None and decision_id and self.checked.label(str(decision_id)):
            rows += label_increments(decision, float(label), self.tiers, self.config,
                                     self.clusters)
        self.evidence.add(rows, self.clock())
        self._new += 1
        return True

    def observe_check(self, decision: Mapping[str, Any], passed: bool,
                      label: float | None = None) -> bool:
        """Add one checked answer of a routed decision to the check evidence, once per
        decision (the first result stands); a passed answer's quality label, given here or
        stored before, teaches what a passed answer is worth. False when it does not teach."""
        if passed and label is None:
            label = self.checked.stored_label(str(decision["decision_id"]))
        rows = check_increments(decision, passed, label, self.tiers, self.config,
                                self.clusters)
        if not rows or not self.checked.claim(decision, passed, label is not None):
            return False
        self.evidence.add(rows, self.clock())
        self._new += 1
        return True

    def rebuild(self) -> LearnedMap:
        """Fit a new map from the store's evidence and swap it in (one rebuild at a time)."""
        with self._rebuilding:
            pending, self._new = self._new, 0
            try:
                evidence, checks = self.evidence.read_marked(self.tiers, self.clock(),
                                                             ("", CHECK_MARK))
            except StoreError as exc:
                self._new += pending  # still waiting: the next tick tries again
                log.warning("learned map refresh failed: %s", exc)
                return self.map
            fitted = fit_map(evidence, self.tiers, self.config)
            fitted = replace(fitted, moved=moved_categories(self.map, fitted),
                             checks=fit_checks(checks, self.tiers, self.config))
            if fitted.moved:
                log.info("learned map: categories moved: %s", ", ".join(fitted.moved),
                         extra={"event": "learning_drift", "categories": list(fitted.moved)})
            self.map = fitted
            return fitted

    def due(self, since_rebuild_s: float) -> bool:
        """Whether the loop should rebuild now."""
        return since_rebuild_s >= self.config.refresh_s or (
            self._new > 0 and since_rebuild_s >= REBUILD_AFTER_S)

    def reset(self) -> None:
        """Forget every outcome so far, for learning (the store keeps the outcomes)."""
        with self._rebuilding:
            self.evidence.clear()
            self.map = empty_map(self.tiers, self.config)
            self._new = 0

    def forget(self, namespace: str, path: str) -> int:
        """Forget one category of one key (and the finer ones under it) and rebuild; returns
        how many (category, tier) rows of evidence went (0: no such category)."""
        gone = self.evidence.forget(namespace, path, self.clock())
        if gone:
            self.rebuild()
        return gone

    def current(self) -> LearnedMap:
        """The map, rebuilt first if outcomes are waiting."""
        return self.rebuild() if self._new else self.map

    def report(self) -> dict[str, Any]:
        """The map as an operator inspects it, rebuilt first if outcomes are waiting."""
        if self._new:
            self.rebuild()
        checks = self.map.checks.snapshot() if self.map.checks is not None else []
        return {"enabled": True, **self.map.snapshot(), "checks": checks,
                "stale": self._new, "categories_limit": self.config.max_categories}
