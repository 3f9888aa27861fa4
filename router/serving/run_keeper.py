"""The runs' part of the closed loop: the run state every service reads, the store's view of
runs (ledgers, and the live runs put back at start), and the retention job.

`ClosedLoop` owns one `RunKeeper` for the life of the process, like its budgets: the run state
survives reloads, and a restart reads the live runs back from the trace store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

from router.config import Settings
from router.errors import FeedbackConflict, StoreError, UnknownRun
from router.guards.run_spend import LocalRunSpend, run_key
from router.guards.run_spend_redis import SharedRunSpend
from router.guards.shared import SharedCounters
from router.schemas import (
    RunLedger,
    RunList,
    RunOutcome,
    RunOutcomeInfo,
    RunOutcomeReceipt,
)
from router.traces.escalations import CallCost, escalation_report
from router.traces.retention import RetentionJob, SideConnection
from router.traces.run_records import RunRecords
from router.traces.store import TraceStore

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 15.0  # sweep idle runs out of memory this often (a read also ignores them)


class RunKeeper:
    """Run spend and models in memory; ledgers and retention on the trace store (if any)."""

    def __init__(self, settings: Settings, store: TraceStore | None,
                 shared: SharedCounters | None = None):
        self.settings = settings
        self.store = store
        local = LocalRunSpend(settings.runs.expire_after_s)
        # with shared state, a run's cap holds across replicas
        self.state: LocalRunSpend | SharedRunSpend = (
            SharedRunSpend(local, shared) if shared is not None else local)
        self.records = RunRecords(store) if store is not None else None
        self.deleter = SideConnection(store.db) if store is not None else None
        self.retention = RetentionJob(self.deleter) if self.deleter is not None else None
        self._swept = time.monotonic()

    def configure(self, settings: Settings) -> None:
        self.settings = settings
        self.state.configure(settings.runs)

    def load(self) -> None:
        """Live runs from the store into the run state."""
        if self.records is None:
            return
        try:
            totals = self.records.live_totals(time.time(), self.settings.runs.expire_after_s)
        except StoreError as exc:
            log.warning("could not read the live runs: %s", exc)
            return
        log.info("%d live runs read from the trace store", self.state.load(totals))

    def tick(self) -> None:
        """From the closed loop's background thread: expire idle runs, run retention."""
        now = time.monotonic()
        if now - self._swept >= EXPIRE_EVERY_S:
            self.state.expire()
            self._swept = now
        if self.retention is not None:
            self.retention.tick(self.settings.store.retention_days)

    def correct(self, decision: Mapping[str, Any], usd: float) -> None:
        """Feedback's reported cost minus the decision's estimate, into the decision's run."""
        if decision.get("run_id"):
            self.state.correct(run_key(decision.get("api_key"), decision["run_id"]), usd)

    def close(self) -> None:
        if self.deleter is not None:
            self.deleter.close()

    def ledger(self, run_id: str, owner: str | None) -> RunLedger:
        """The live run's ledger as `owner` may see it (None: every key's calls); UnknownRun
        when it has no call of the caller's, or it expired (the two look alike on purpose: a
        key learns nothing of another key's runs). Its outcome is its key's (for `owner`
        None: the one key whose calls made it; none shown when several keys share the id)."""
        expire = self.settings.runs.expire_after_s
        ledger = self._records().ledger(run_id, expire, time.time(), owner)
        if ledger is None:
            raise UnknownRun(f"no live run {run_id!r} of this API key (a run is visible to the "
                             f"key that made its calls and to admin keys, and expires "
                             f"{expire:g} s after its last call: runs.expire_after_s)")
        keys = _outcome_keys(ledger, owner)
        if len(keys) == 1 and self.records is not None:
            stored = self.records.outcome(keys[0], run_id)
            if stored is not None:
                ledger = ledger.model_copy(update={"outcome": _outcome_info(stored)})
        calls = [CallCost(s.cost_usd, s.tokens_in or s.tokens_in_estimated, s.tokens_out,
                          s.escalated_to is not None, s.escalated_from is None)
                 for s in ledger.steps if not s.shadow]
        ledger.escalations = escalation_report(calls, self.settings)
        return ledger

    def record_outcome(self, run_id: str, owner: str | None, key: str | None,
                       outcome: RunOutcome) -> RunOutcomeReceipt:
        """A run's final outcome, once per (the run's key, run_id): only for a live run with a
        call of `owner`'s (another key's run is UnknownRun, as for the ledger; `owner` None,
        an admin or an open service: the one key whose calls made it, FeedbackConflict when
        several keys' runs share the id); `key` reported it. The same again is a duplicate,
        a different one FeedbackConflict."""
        ledger = self.ledger(run_id, owner)  # UnknownRun unless the caller may see the run
        keys = _outcome_keys(ledger, owner)
        if len(keys) != 1:
            raise FeedbackConflict(
                f"run id {run_id!r} is used by the keys {keys}: each key's run has its own "
                "outcome, so report it with that key")
        records = self._records()
        stored = records.outcome(keys[0], run_id)
        status: Literal["recorded", "duplicate"] = "duplicate"
        if stored is None:
            stored = records.record_outcome(keys[0], run_id, key, outcome.success,
                                            outcome.quality, time.time())
            status = "recorded"
        info = _outcome_info(stored)
        if (info.success, info.quality) != (outcome.success, outcome.quality):
            raise FeedbackConflict(
                f"run {run_id!r} already has the outcome success={info.success}, "
                f"quality={info.quality}; a run's outcome is recorded once")
        return RunOutcomeReceipt(run_id=run_id, status=status, outcome=info)

    def recent(self, owner: str | None, limit: int, offset: int = 0) -> RunList:
        """A page of the live runs `owner` may see, the latest call first."""
        runs, more = self._records().recent(time.time(), self.settings.runs.expire_after_s,
                                            limit, owner, offset)
        return RunList(runs=runs, next_offset=offset + len(runs) if more else None)

    def _records(self) -> RunRecords:
        if self.records is None or self.store is None:
            raise StoreError("the trace store is disabled (store.enabled: false): no ledgers")
        self.store.flush(timeout=2.0)  # this replica's queued decisions are part of their runs
        return self.records


def _outcome_keys(ledger: RunLedger, owner: str | None) -> list[str | None]:
    """Whose outcome a run's is: the caller's own run, else (an admin, an open service) the
    keys whose calls made it (one, or a conflict)."""
    return [owner] if owner is not None else list(ledger.api_keys)


def _outcome_info(row: dict[str, Any]) -> RunOutcomeInfo:
    success = row["success"]
    return RunOutcomeInfo(success=None if success is None else bool(success),
                          quality=row["quality"], api_key=row["reported_by"],
                          received_at=float(row["received_at"]))
