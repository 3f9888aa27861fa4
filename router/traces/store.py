"""The trace store: every decision and every outcome, off the request's hot path.

Decisions go through a bounded in-memory queue to one background writer thread, which writes
them in batches (up to ``store.batch_size``, waiting at most ``store.flush_interval_ms`` to
fill one). The request thread only appends a reference to the queue; serialising, hashing and
SQL all happen in the writer.

What can be lost, and when:

* **Graceful shutdown** (SIGTERM, `ServiceHolder.stop`): nothing; `close` drains the queue.
* **Crash** (SIGKILL, OOM): the decisions still in the queue, at most ``store.queue_size``
  of them and, at steady load, about ``flush_interval_ms`` worth of traffic. Committed
  batches survive (SQLite WAL; PostgreSQL commit). Feedback is never in the queue.
* **Queue full** (the database is slower than traffic for a while): the request waits up to
  ``store.block_ms`` for room, then the decision is dropped and counted in
  ``tier_router_store_dropped_total``. Routing never fails because the store is slow.
* **Database down** (PostgreSQL restarting): the writer keeps its batch and retries it (backoff
  up to ``OUTAGE_BACKOFF_S``) for as long as the failure is the connection's; new decisions
  wait in the queue (the bound above), and feedback answers 503 until a connection is back
  (the durable connection is replaced on the next call), so the client retries. A batch that
  fails for another reason is dropped after ``WRITE_RETRIES``, logged and counted.

Feedback is written synchronously on a ``synchronous=FULL`` connection and committed before
the HTTP answer, so a 2xx means the outcome is on disk. If the decision it refers to is still
in the queue, it is written in the same transaction, so an acknowledged outcome never points
at a decision a crash could lose.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from router.config import StoreConfig
from router.decision.features import CallView
from router.errors import FeedbackConflict, StoreError
from router.schemas import RouteDecision, RouteRequest
from router.traces.db import Database, insert_sql
from router.traces.reads import LEARNING_RESET_KEY, StoreReads
from router.traces.rows import (
    DECISION_COLUMNS,
    OUTCOME_COLUMNS,
    PendingDecision,
    Seen,
    Written,
)

log = logging.getLogger(__name__)

WRITE_RETRIES = (0.1, 0.5, 2.0)
OUTAGE_BACKOFF_S = 2.0  # the longest pause between writes of a batch while the database is down

class StoreMetrics:
    """The store's counters, registered in the app's own registry."""

    def __init__(self, registry: CollectorRegistry):
        self.written = Counter("tier_router_store_decisions_written_total",
                               "Decisions committed to the trace store.", registry=registry)
        self.dropped = Counter("tier_router_store_dropped_total",
                               "Decisions not stored: queue full (after block_ms), or store "
                               "closed.", ["why"], registry=registry)
        self.write_errors = Counter("tier_router_store_write_errors_total",
                                    "Decision batches lost after every write retry failed.",
                                    registry=registry)
        self.feedback = Counter("tier_router_feedback_total", "Feedback answered, by outcome.",
                                ["status"], registry=registry)
        self.queue_depth = Gauge("tier_router_store_queue_depth",
                                 "Decisions waiting for the writer.", registry=registry)


class TraceStore(StoreReads):
    """Decisions through a queue and a writer thread; outcomes and reads synchronous."""

    def __init__(self, config: StoreConfig, metrics: StoreMetrics | None = None):
        self.config = config
        self.db = Database.from_url(config.url)
        self.metrics = metrics
        self._queue: queue.Queue[PendingDecision | None] = queue.Queue(config.queue_size)
        self._pending: dict[str, PendingDecision] = {}
        self._pending_lock = threading.Lock()
        self._conn: Any = None  # the durable connection: feedback and reads
        self._reader: Any = None  # the reports' connection (`read`), opened when first needed
        self._reader_lock = threading.Lock()
        self._opened = False  # open() ran and close() did not: a lost connection is replaced
        self._conn_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._accepting = False

    # Lifetime

    def open(self) -> TraceStore:
        """Connect and create the schema; enough for readers (CLI spend, export, retrain)."""
        if self._conn is None:
            self._conn = self.db.connect("durable")
            self.db.create_schema(self._conn)
            self._opened = True
        return self

    def start(self) -> TraceStore:
        """Open, then start the background writer."""
        self.open()
        writer = self.db.connect("writer")
        self._thread = threading.Thread(target=self._run, args=(writer,), daemon=True,
                                        name="trace-store-writer")
        self._accepting = True
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting, write everything queued, then close. Safe to call twice."""
        self._accepting = False
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.error("trace store queue still full after %.0f s; closing anyway", timeout)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("trace store writer did not finish within %.0f s", timeout)
            self._thread = None
        with self._conn_lock:
            self._opened = False
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    # The hot path

    def record(
        self, request: RouteRequest, view: CallView, decision: RouteDecision,
        seen: Seen | None = None,
    ) -> None:
        """The closed loop calls it per decision: enqueue, wait at most block_ms, else drop."""
        if not self._accepting:
            self._count_drop("closed")
            return
        item = PendingDecision(request, decision, view, time.time(), seen)
        with self._pending_lock:
            self._pending[decision.decision_id] = item
        try:
            if self.config.block_ms > 0:
                self._queue.put(item, timeout=self.config.block_ms / 1000)
            else:
                self._queue.put_nowait(item)
        except queue.Full:
            with self._pending_lock:
                self._pending.pop(decision.decision_id, None)
            self._count_drop("queue_full")

    def _count_drop(self, why: str) -> None:
        if self.metrics is not None:
            self.metrics.dropped.labels(why).inc()

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued decision is written (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    # The writer thread

    def _run(self, conn: Any) -> None:
        stop = False
        while not stop:
            batch = self._next_batch()
            stop = batch[-1] is None
            records = [item for item in batch if item is not None]
            try:
                if records:
                    conn = self._write_batch(conn, records)
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad batch
                log.exception("trace store writer: a batch of %d decisions failed", len(records))
                self._forget(records, written=False)
            finally:
                for _ in batch:
                    self._queue.task_done()
        conn.close()

    def _next_batch(self) -> list[PendingDecision | None]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.config.flush_interval_ms / 1000
        while batch[-1] is not None and len(batch) < self.config.batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_batch(self, conn: Any, records: list[PendingDecision]) -> Any:
        rows = [item.row(self.config) for item in records]
        sql = self.db.sql(insert_sql("decisions", DECISION_COLUMNS, "decision_id"))
        pauses, attempt, written = iter(WRITE_RETRIES), 0, False
        while not written:
            attempt += 1
            try:
                conn.cursor().executemany(sql, rows)
                conn.commit()
                written = True
            except self.db.errors() as exc:
                log.warning("trace store write failed (attempt %d): %s", attempt, exc)
                conn = self._reset(conn)
                outage = isinstance(exc, self.db.connection_errors()) and self._accepting
                pause = next(pauses, OUTAGE_BACKOFF_S if outage else None)
                if pause is None:
                    break
                time.sleep(pause)
        if not written:
            log.error("dropping %d decisions after %d failed writes", len(rows), attempt)
        self._forget(records, written)
        return conn

    def _forget(self, records: list[PendingDecision], written: bool) -> None:
        """Take written (or given-up) decisions out of the pending index; count them."""
        with self._pending_lock:
            for item in records:
                self._pending.pop(item.decision.decision_id, None)
        if self.metrics is not None and written:
            self.metrics.written.inc(len(records))
        elif self.metrics is not None:
            self.metrics.write_errors.inc()

    def _reset(self, conn: Any) -> Any:
        """Roll back, or reconnect when the connection itself is gone (PostgreSQL restart)."""
        try:
            conn.rollback()
            return conn
        except self.db.errors():
            try:
                return self.db.connect("writer")
            except StoreError as exc:
                log.warning("%s", exc)
                return conn

    # Synchronous reads and the durable feedback write

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of one read (portable SQL, ``?`` placeholders) as dicts, on the durable
        connection; for the modules that own a query of their own (e.g. `traces.shadow`)."""
        with self._conn_lock:
            conn = self._require()
            cur = conn.cursor()
            try:
                cur.execute(self.db.sql(sql), params)
                names = [c[0] for c in cur.description]
                rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                conn.commit()
            except self.db.errors() as exc:
                self._recover()
                raise StoreError(f"trace store read failed: {exc}") from exc
        return rows

    def write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One durable write (committed before it returns); how many rows it changed. For the
        modules that own a table of their own (e.g. `traces.escalations`)."""
        with self._conn_lock:
            conn = self._require()
            try:
                cur = conn.cursor()
                cur.execute(self.db.sql(sql), params)
                changed = int(cur.rowcount)
                conn.commit()
            except self.db.errors() as exc:
                self._recover()
                raise StoreError(f"trace store write failed: {exc}") from exc
        return changed

    def execute(self, statements: Sequence[tuple[str, Iterable[tuple[Any, ...]]]]) -> None:
        """Run each (portable SQL, rows of parameters, a list or an iterator read as it goes;
        `[()]` runs it once without any, `[]` not at all) in
        one committed transaction on the durable connection; for the modules that own a write
        of their own (`traces.evidence`)."""
        with self._conn_lock:
            conn = self._require()
            cur = conn.cursor()
            try:
                for sql, params in statements:
                    if params:
                        cur.executemany(self.db.sql(sql), params)
                conn.commit()
            except self.db.errors() as exc:
                self._recover()
                raise StoreError(f"trace store write failed: {exc}") from exc

    def read(self, sql: str, params: tuple[Any, ...] = (),
             rows: int | None = None) -> list[dict[str, Any]]:
        """Rows of one report query (``GET /runs``, ``/spend``) on the reader connection, never
        the one feedback commits on: a long report cannot make a /feedback wait. `rows`: at
        most that many (fetched as needed, the rest never read)."""
        with self._reader_lock:
            if self._reader is None:
                if not self._opened:
                    raise StoreError("the trace store is not open")
                self._reader = self.db.connect("reader")
            conn = self._reader
            cur = conn.cursor()
            try:
                cur.execute(self.db.sql(sql), params)
                names = [c[0] for c in cur.description]
                fetched = cur.fetchall() if rows is None else cur.fetchmany(rows)
                out = [dict(zip(names, row, strict=True)) for row in fetched]
                conn.rollback()  # end the read transaction: the next read sees new commits
            except self.db.errors() as exc:
                try:
                    conn.close()
                except self.db.errors():
                    pass
                self._reader = None  # a new one on the next read
                raise StoreError(f"trace store read failed: {exc}") from exc
        return out

    def _require(self) -> Any:
        """The durable connection; a new one when the last was lost (a database restart)."""
        if self._conn is None:
            if not self._opened:
                raise StoreError("the trace store is not open")
            self._conn = self.db.connect("durable")  # StoreError (-> 503) while still down
        return self._conn

    def _recover(self) -> None:
        """After a failed statement: roll back; a connection that cannot even do that is gone
        and is replaced on the next call (`_require`)."""
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except self.db.errors():
            try:
                self._conn.close()
            except self.db.errors():
                pass
            self._conn = None

    def decision(self, decision_id: str) -> tuple[dict[str, Any] | None, PendingDecision | None]:
        """(stored row or summary, the pending item if it is still queued), or (None, None)."""
        with self._pending_lock:
            pending = self._pending.get(decision_id)
        if pending is not None:
            return pending.summary(self.config), pending
        rows = self.query("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,))
        return (rows[0] if rows else None), None

    def add_outcome(
        self, outcome: dict[str, Any], pending: PendingDecision | None = None,
        complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Written:
        """Commit one outcome (and its still-queued decision) before returning.

        The key is ``feedback_id``; the same key with the same body is a duplicate. With a
        different body, `complete` (given the stored row) says which columns the new report
        adds (`traces.feedback.completion`: none is a duplicate; it raises on a contradiction);
        without it, a `FeedbackConflict` (the first outcome stays).
        """
        values = tuple(outcome.get(c) for c in OUTCOME_COLUMNS)
        key = outcome["feedback_id"]
        with self._conn_lock:
            conn = self._require()
            cur = conn.cursor()
            try:
                if pending is not None:
                    cur.execute(
                        self.db.sql(insert_sql("decisions", DECISION_COLUMNS, "decision_id")),
                        pending.row(self.config))
                cur.execute(self.db.sql(insert_sql("outcomes", OUTCOME_COLUMNS, "feedback_id")),
                            values)
                if cur.rowcount == 1:
                    conn.commit()
                    return Written("stored", outcome)
                # the insert holds SQLite's write lock; PostgreSQL locks the row: the read and
                # the completion below are one step for every replica
                lock = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
                cur.execute(self.db.sql(f"SELECT * FROM outcomes WHERE feedback_id = ?{lock}"),
                            (key,))
                names = [c[0] for c in cur.description]
                stored = dict(zip(names, cur.fetchone(), strict=True))
                if stored["body_sha256"] == outcome["body_sha256"]:
                    conn.commit()
                    return Written("duplicate", stored)
                if complete is None:
                    raise FeedbackConflict(
                        f"a different outcome is already stored for {key!r}; "
                        "outcomes are never overwritten")
                added = complete(stored)
                if added:
                    sets = ", ".join(f"{column} = ?" for column in added)
                    cur.execute(self.db.sql(f"UPDATE outcomes SET {sets} WHERE feedback_id = ?"),
                                (*added.values(), key))
                conn.commit()
            except FeedbackConflict:
                conn.rollback()
                raise
            except self.db.errors() as exc:
                self._recover()
                raise StoreError(f"could not store the feedback: {exc}") from exc
        if not added:
            return Written("duplicate", stored)
        return Written("completed", {**stored, **added}, added, before=stored)

    def reset_learning(self, at: float | None = None) -> float:
        """Forget every outcome received until `at` (now), for learning only; returns `at`."""
        at = time.time() if at is None else at
        with self._conn_lock:
            conn = self._require()
            try:
                conn.cursor().execute(self.db.sql(
                    "INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                    "DO UPDATE SET value = excluded.value"), (LEARNING_RESET_KEY, repr(at)))
                conn.commit()
            except self.db.errors() as exc:
                self._recover()
                raise StoreError(f"could not reset the learning state: {exc}") from exc
        return at

    def counts(self) -> dict[str, int]:
        rows = self.query("SELECT (SELECT COUNT(*) FROM decisions) AS decisions, "
                                 "(SELECT COUNT(*) FROM outcomes) AS outcomes")
        return {k: int(v) for k, v in rows[0].items()}

