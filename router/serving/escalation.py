"""What one escalation does, in order: find the decision escalated from, check the caller owns
it and that it was not escalated from before, pick the stronger tier within the first
decision's limits, admit the call (budgets, run cap, per-minute limits count it like any call),
claim the escalation durably, decide, then record the first answer as a failure of its tier
through the one feedback path (it teaches learning once, like a labelled /feedback).

A decision is escalated from once: the claim is a row of the trace store's escalations table
keyed by the decision escalated from, written before the new decision, so a second escalation
(here or on another replica, before or after a restart) is a 409 naming where the first went.
The chain climbs a tier at a time at least, so a call escalates at most once per tier.

Which stronger tier: the next one, unless the learned map says the next one fails this kind
of call too (`decision.escalation.middle_fails_too`); then the strongest one allowed; for a
verifiable call, a tier in between first when the map's check evidence says it saves
(`decision.escalation.escalation_tier`). An escalation for a check's reason teaches the map's
check evidence a failed check of the first decision's tier.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router.decision.categories import Signals
from router.decision.escalation import escalation_plan
from router.errors import EscalationRefused, FeedbackConflict, RequestLimitError, StoreError
from router.guards.auth import Principal
from router.guards.run_spend import check_owner
from router.schemas import Feedback, RouteDecision, RouteRequest
from router.serving.feedback import FeedbackService
from router.serving.service import RouterService
from router.traces.escalations import EscalationRecords, EscalationRow

log = logging.getLogger(__name__)

FAILED = 0.0  # the quality an escalation records for the answer it escalates from
# The reasons that are a check the caller ran (teaching the map's check evidence a failure);
# low_confidence, rejected and other say nothing of a check.
CHECK_REASONS = frozenset({"check_failed", "invalid_json", "schema_mismatch", "tool_error",
                           "tests_failed", "refusal"})


@dataclass(frozen=True)
class EscalationService:
    """The escalation path: the feedback path it records failures through, and the table."""

    feedback: FeedbackService
    records: EscalationRecords | None

    def escalate(self, request: RouteRequest, service: RouterService,
                 caller: Principal) -> RouteDecision:
        """The decision of an escalation, or why there is none: 404/403 as /feedback answers
        for the decision escalated from, 409 when it was escalated from already or no stronger
        tier fits, 402 for a spent budget or run cap."""
        records = self._require_records()
        assert request.escalate_from is not None and request.escalation is not None
        origin, _ = self.feedback.find(request.escalate_from)
        check_owner(origin, caller)
        went = records.escalated_to(request.escalate_from)
        if went is not None:
            raise already(request.escalate_from, went)
        if origin.get("shadow"):
            raise EscalationRefused(
                f"decision {request.escalate_from!r} was a shadow decision: it was not "
                "followed, so its answer cannot have failed", limit="shadow")
        inherit(request, origin)
        facts = service.facts_of(request)
        failed = str(origin["tier"])
        signals = Signals(request.api_key, request.role, request.task, request.step)
        target = origin.get("quality_target")
        nxt, plan = escalation_plan(service.table, facts, failed, service.learned_map(),
                                    signals, float(target if target is not None
                                                   else service.settings.quality_target),
                                    bool(request.verifiable))
        attempt = records.attempt_of(request.escalate_from) + 1
        request.escalate_as(service.table.names[nxt], request.escalate_from, attempt, plan)
        admission = service.admit(request)  # 402, 429 like any call; counts in budgets, run
        row = EscalationRow(
            from_decision_id=request.escalate_from, to_decision_id=admission.decision_id,
            attempt=attempt, from_tier=failed, to_tier=service.table.names[nxt],
            reason=request.escalation.reason, logprob_mean=request.escalation.logprob_mean,
            detail=request.escalation.detail, api_key=request.api_key, run_id=request.run_id)
        try:
            went = records.claim(row)
        except Exception:
            service.release([admission])
            raise
        if went is not None:  # another escalation of the same decision won the race
            service.release([admission])
            raise already(request.escalate_from, went)
        try:
            decision = service.route_admitted([request], [admission])[0]
        except Exception:
            service.release([admission])
            records.withdraw(row)
            raise
        if decision.tier != row.to_tier:  # model health moved it
            records.settle(row.from_decision_id, decision.tier)
        self._record_failure(request.escalate_from, service, caller)
        if request.escalation.reason in CHECK_REASONS and self.feedback.check is not None:
            self.feedback.check(origin, False, None)  # a failed check of that tier, once
        return decision

    def _record_failure(self, decision_id: str, service: RouterService,
                        caller: Principal) -> None:
        """The first answer, as a labelled failure of its tier for this call, through the one
        feedback path; an outcome already labelled there keeps its label (it taught once)."""
        try:
            self.feedback.feedback(Feedback(decision_id=decision_id, quality=FAILED),
                                   service, caller, escalation=True)
        except FeedbackConflict:
            log.info("decision %s already had a labelled outcome: kept", decision_id)

    def _require_records(self) -> EscalationRecords:
        if self.records is None:
            raise StoreError("the trace store is disabled (store.enabled: false): escalation "
                             "needs it to remember which decisions were escalated from")
        return self.records


def already(decision_id: str, went: str) -> EscalationRefused:
    return EscalationRefused(
        f"decision {decision_id!r} was escalated from already, to decision {went!r}: each "
        "decision can be escalated from once (escalate from that one if it failed too)",
        escalated_to=went)


# What an escalation takes from the decision it follows, when the request does not say it.
INHERITED = ("run_id", "role", "step", "task", "user")


def inherit(request: RouteRequest, origin: Mapping[str, Any]) -> None:
    """The first decision's run and attribution, ceiling and max_cost_usd, onto the
    escalation (its own max_cost_usd may only tighten); a different run is refused (422)."""
    if request.tier is not None:
        raise RequestLimitError("tier", "an escalation picks its own tier (a stronger one than "
                                "the decision it escalates from): leave 'tier' out", None)
    for name, column in zip(INHERITED, ("run_id", "role", "step", "task", "user_id"),
                            strict=True):
        stored = origin.get(column)
        mine = getattr(request, name)
        if name == "run_id" and mine is not None and stored is not None and mine != stored:
            raise RequestLimitError(
                "run_id", f"an escalation continues the run of the decision it escalates from "
                f"({stored!r}), not {mine!r}", stored)
        if mine is None and stored is not None:
            setattr(request, name, stored)
    if origin.get("requested_model"):  # the first decision's ceiling holds
        request.model = origin["requested_model"]
    cap = origin.get("max_cost_usd")
    if cap is not None:
        own = request.max_cost_usd
        request.max_cost_usd = float(cap) if own is None else min(float(cap), own)
