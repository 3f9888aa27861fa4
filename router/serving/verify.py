"""What one POST /verify does: find the decision (404/403 as /feedback), read the answer's
checks and confidence, accept it or escalate it, record the verification, and learn.

A failed check escalates; passed checks accept (and are evidence, for the threshold and for the
learned map's check evidence); without checks the answer is accepted only above its category's
learned threshold (`decision.acceptance`), which exists only once the category's checked answers
show, at the configured confidence, that accepted answers pass at least at the quality target.
Its categories are the learned map's (`traces.evidence.category_names`: the key's signal path,
cluster and root): a checked answer teaches each of them, and the finest with ``min_outcomes``
checked answers decides, else the finest (no threshold yet). Only the key's own answers teach
its thresholds (the map's shared namespace does not apply). The learned thresholds are an
immutable snapshot, refitted and swapped whole when a checked answer arrives, and read back from
the store at start. Off unless ``verify.enabled``.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from router.config import Settings
from router.decision.acceptance import AcceptanceThreshold
from router.errors import FeatureOff, StoreError
from router.guards.auth import Principal
from router.guards.run_spend import check_owner
from router.schemas import Escalation, EscalationReason, VerifyAnswer, VerifyRequest
from router.serving.escalation import EscalationService
from router.serving.service import RouterService
from router.traces.evidence import category_names
from router.traces.verifications import VerificationRecords


def categories_of(decision: dict[str, Any], service: RouterService) -> list[str]:
    """Where a call's threshold is learned: the learned map's categories of its decision, in
    its key's namespace, finest first (``key/role:r/task:t``, ..., its cluster, ``key``)."""
    grouping = service.learning.clusters if service.learning is not None else None
    return category_names(decision, service.settings.learning, grouping)


def deciding(names: list[str], thresholds: AcceptanceThreshold, least: int) -> str:
    """The finest of `names` with `least` checked answers, else the finest (which has no
    threshold yet): the map's rule for which category decides."""
    return next((n for n in names if thresholds.evidence_.get(n, 0) >= least), names[0])


@dataclass
class VerifyService:
    """The /verify path: the escalation path it hands failed answers to, and the thresholds."""

    escalations: EscalationService
    records: VerificationRecords | None
    thresholds: AcceptanceThreshold | None = None  # the snapshot serving now
    _observed: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, body: VerifyRequest, service: RouterService,
               caller: Principal) -> VerifyAnswer:
        settings = service.settings
        if not settings.verify.enabled:
            raise FeatureOff("POST /verify is off (verify.enabled: false): confidence-based "
                             "acceptance is tested on synthetic data only; turn it on in the "
                             "config once checked answers can teach it")
        records = self._require_records()
        decision, _ = self.escalations.feedback.find(body.decision_id)
        check_owner(decision, caller)
        thresholds = self._thresholds(settings, records, service)
        names = categories_of(decision, service)
        category = deciding(names, thresholds, settings.verify.min_outcomes)
        threshold = thresholds.threshold(category)
        passed = None if not body.checks else all(body.checks.values())
        action: Literal["accept", "escalate"]
        reason: EscalationReason = "low_confidence"
        if passed is False and body.checks:
            failed = sorted(name for name, ok in body.checks.items() if not ok)
            action, reason = "escalate", "check_failed"
            why = f"check{'s' if len(failed) > 1 else ''} {', '.join(failed)} failed"
        elif passed:
            action, why = "accept", "every check passed"
        elif threshold is not None and body.logprob_mean >= threshold:
            action = "accept"
            why = f"logprob_mean {body.logprob_mean:g} >= the category's {threshold:g}"
        else:
            action = "escalate"
            why = (f"logprob_mean {body.logprob_mean:g} < the category's {threshold:g}"
                   if threshold is not None else "no learned threshold yet for this category "
                   f"({thresholds.evidence_.get(category, 0)} of "
                   f"{settings.verify.min_outcomes} checked answers): nothing is accepted on "
                   "confidence alone")
        if records.add(body.decision_id, category, body.logprob_mean, passed, action) and (
                passed is not None):
            self._learn(settings, names, body.logprob_mean, passed)
        check = self.escalations.feedback.check
        if passed is not None and check is not None:
            check(decision, passed, None)  # the learned map's check evidence, once
        answer = VerifyAnswer(action=action, decision_id=body.decision_id, category=category,
                              threshold=threshold, evidence=thresholds.evidence_.get(category, 0),
                              detail=why)
        if action == "escalate" and body.request is not None:
            request = body.request.attribute_to(caller.key_name)
            request.escalate_from = body.decision_id
            request.escalation = Escalation(reason=reason, logprob_mean=body.logprob_mean,
                                            detail=why[:1000])
            answer.next = self.escalations.escalate(request, service, caller)
        elif action == "escalate":
            answer.detail += ("; POST /route with escalate_from for the next decision (or "
                              "send the call's body as `request`)")
        return answer

    def _thresholds(self, settings: Settings, records: VerificationRecords,
                    service: RouterService) -> AcceptanceThreshold:
        """The snapshot serving now; built from the store the first time."""
        current = self.thresholds
        if current is not None and current.quality_bar == settings.quality_target:
            return current
        with self._lock:
            self._observed = defaultdict(lambda: deque(maxlen=settings.verify.max_outcomes))
            for row, lp, ok in records.observations()[::-1]:  # oldest first: deques keep newest
                for name in categories_of(row, service):
                    self._observed[name].append((lp, ok))
            return self._refit(settings)

    def _learn(self, settings: Settings, names: list[str], logprob: float,
               passed: bool) -> None:
        with self._lock:
            for name in names:
                self._observed[name].append((logprob, float(passed)))
            self._refit(settings)

    def _refit(self, settings: Settings) -> AcceptanceThreshold:
        cats, lps, oks = [], [], []
        for category, rows in self._observed.items():
            for lp, ok in rows:
                cats.append(category)
                lps.append(lp)
                oks.append(ok)
        config = settings.verify
        fitted = AcceptanceThreshold(settings.quality_target, config.confidence,
                                     config.min_outcomes).fit(cats, lps, oks)
        self.thresholds = fitted  # swapped whole
        return fitted

    def _require_records(self) -> VerificationRecords:
        if self.records is None:
            raise StoreError("the trace store is disabled (store.enabled: false): /verify "
                             "needs it")
        return self.records
