"""What one `/feedback` report does, in order: find its decision, check the caller owns it and
that what it reports is possible, store it durably, then let the outcome move model health,
spend (budgets and the run's), learning and the key's token charge.

A report is believed only within what its caller owns: another key's decision is a 403 (an
admin key may report on any), a reported cost or token count beyond what the call could cost is
a 422 (`traces.feedback.check_plausible`), and a trace without a decision counts toward its own
key's budgets only, never toward a role or fleet budget other keys share. The key's token
charge may come down only to the input tokens the router measured at ``/route``: only unused
output comes back.

`FeedbackService` is built once, like the closed loop whose state objects it moves; it reads
the current `RouterService` per report for its settings and its gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from router.errors import StoreError, UnknownDecision
from router.guards.auth import Principal
from router.guards.budgets import BudgetTracker
from router.guards.run_spend import check_owner
from router.schemas import Feedback, FeedbackReceipt, TraceRecord
from router.serving.closed_loop import DriftWindow, best_score
from router.serving.model_health import ModelHealth, check_attempts
from router.serving.run_keeper import RunKeeper
from router.serving.service import RouterService
from router.traces.escalations import EscalationRecords
from router.traces.feedback import check_plausible, completion, decision_outcome, trace_outcome
from router.traces.rows import Written
from router.traces.store import StoreMetrics, TraceStore

Learn = Callable[[dict[str, Any], dict[str, Any]], None]  # an outcome and its decision row
# a decision row, whether its answer passed its check, the answer's label if any
Check = Callable[[dict[str, Any], bool, "float | None"], None]


@dataclass(frozen=True)
class FeedbackService:
    """The /feedback path: the long-lived state an outcome moves, and the one learning call."""

    store: TraceStore | None
    health: ModelHealth
    budgets: BudgetTracker
    runs: RunKeeper
    drift: DriftWindow
    learn: Learn
    metrics: StoreMetrics | None = None
    escalations: EscalationRecords | None = None  # which decisions were escalated from
    check: Check | None = None  # the learned map's check evidence (ClosedLoop.check)

    def feedback(self, item: Feedback | TraceRecord, service: RouterService,
                 caller: Principal, escalation: bool = False) -> FeedbackReceipt:
        """Store one outcome durably (blocking), then count it; 404 for an unknown decision,
        403 for one another key made, 422 for a report beyond what the call could cost.
        `escalation`: the failure an escalation records (`serving.escalation`); any other label
        on a decision escalated from is ignored, the receipt saying so (it taught once)."""
        store = self._require_store()
        settings = service.settings
        decision, pending = None, None
        ignored: list[str] = []
        if item.decision_id is not None:
            decision, pending = self._find(store, item.decision_id)
            check_owner(decision, caller)
            if isinstance(item, Feedback) and not escalation:
                item, ignored = self._label_of_escalated(item)
            if isinstance(item, Feedback) and item.attempts:
                check_attempts(item.attempts, decision, settings)
        check_plausible(item, settings, decision)
        if isinstance(item, Feedback):
            assert decision is not None
            outcome = decision_outcome(item, decision, settings)
            complete = partial(completion, new=outcome, fb=item, settings=settings,
                               decision=decision)
        else:
            outcome, complete = trace_outcome(item, settings, api_key=caller.key_name), None
        written = store.add_outcome(outcome, pending, complete)
        if self.metrics is not None:
            self.metrics.feedback.labels(written.status).inc()
        self.health.observe(written, decision)  # once per decision: its first word on health
        if written.status == "stored":
            self._count(outcome, decision, caller)
        elif written.status == "completed" and decision is not None:
            self._count_added(written, decision)
        if written.status in ("stored", "completed") and isinstance(item, Feedback) and (
                decision is not None and item.check_passed is not None and not ignored
                and self.check is not None):
            self.check(decision, item.check_passed, item.label())
        if written.status in ("stored", "completed") and isinstance(item, Feedback) and (
                decision is not None and service.gate is not None):
            measured = int(decision.get("tokens_in") or 0)
            service.gate.correct(
                decision.get("api_key"), item.decision_id,
                None if item.tokens_in is None else max(item.tokens_in, measured),
                item.tokens_out)
        return FeedbackReceipt(
            feedback_id=outcome["feedback_id"], decision_id=outcome["decision_id"],
            status=written.status, ignored_fields=ignored or None,
            detail=(f"decision {item.decision_id!r} was escalated from: the escalation "
                    "recorded its answer as a failure of its tier, so a label here is "
                    "ignored (cost, tokens, latency and errors count)") if ignored else None)

    def find(self, decision_id: str) -> tuple[dict[str, Any], Any]:
        """The decision (404 when unknown), as a /feedback report on it would find it."""
        return self._find(self._require_store(), decision_id)

    def _label_of_escalated(self, item: Feedback) -> tuple[Feedback, list[str]]:
        """The report without its label when its decision was escalated from (the
        escalation's failure taught learning once), and the label fields it dropped."""
        if item.label() is None or self.escalations is None or (
                self.escalations.escalated_to(item.decision_id) is None):
            return item, []
        dropped = [f for f in ("quality", "success") if getattr(item, f) is not None]
        return item.model_copy(update=dict.fromkeys(dropped)), dropped

    def _require_store(self) -> TraceStore:
        if self.store is None:
            raise StoreError("the trace store is disabled (store.enabled: false)")
        return self.store

    def _find(self, store: TraceStore, decision_id: str) -> tuple[dict[str, Any], Any]:
        """The decision, stored or still queued here; unknown is answered at once (a decision
        another replica made is written within its flush interval: the client retries)."""
        decision, pending = store.decision(decision_id)
        if decision is None:
            raise UnknownDecision(decision_id, retry_after=max(
                1, round(2 * store.config.flush_interval_ms / 1000 + 0.5)))
        return decision, pending

    def _count(self, outcome: dict[str, Any], decision: dict[str, Any] | None,
               caller: Principal) -> None:
        """A new outcome: drift and learning for a labelled routed call; the reported cost
        replaces the decision's estimate in its budgets and run (a trace without a decision:
        its own key's budgets only, or every budget over its role when the service is open)."""
        if decision is not None and outcome["quality"] is not None:
            self.drift.outcome(outcome["quality"], best_score(decision.get("scores")))
            self.learn(outcome, decision)
        cost = outcome["cost_usd"]
        if cost is None:
            return
        if decision is not None:
            correction = cost - float(decision["estimated_cost_usd"])
            self.budgets.add(decision.get("role"), correction, decision.get("api_key"))
            self.runs.correct(decision, correction)
        elif caller.anonymous:
            self.budgets.add(outcome.get("role"), cost)
        else:
            self.budgets.add_own(caller.name, cost)

    def _count_added(self, written: Written, decision: dict[str, Any]) -> None:
        """A later report completed a stored outcome: count what it added, once (a label
        teaches now; a reported cost replaces the estimate counted before)."""
        added, before = written.added, written.before or {}
        if "quality" in added:
            self.drift.outcome(added["quality"], best_score(decision.get("scores")))
            self.learn(written.row, decision)
        if "cost_usd" in added:
            correction = added["cost_usd"] - float(before.get("cost_usd") or 0.0)
            self.budgets.add(decision.get("role"), correction, decision.get("api_key"))
            self.runs.correct(decision, correction)
