"""Deleting rows: store retention (`store.retention_days`, a periodic job) and forgetting one
user (`tier-router forget --user U`).

A decision goes with its outcome; an outcome posted without a decision (a TRACES.md trace)
goes by its own time or user. Spend, budgets and the learning state read the store, so they
follow: budgets at their next refresh, learning within ``learning.refresh_s``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from router.errors import StoreError
from router.traces.db import Database

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0  # how often the job looks for rows past retention_days


class SideConnection:
    """A durable connection of its own to the store's database, for the deletes (the store's
    writes are its writer's and feedback's); opened on first use, thread-safe."""

    def __init__(self, db: Database):
        self.db = db
        self._conn: Any = None
        self._lock = threading.Lock()

    def execute(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run the statements (portable SQL) in one transaction; their row counts."""
        with self._lock:
            if self._conn is None:
                self._conn = self.db.connect("durable")
            conn = self._conn
            try:
                cur = conn.cursor()
                counts = []
                for sql, params in statements:
                    cur.execute(self.db.sql(sql), tuple(params))
                    counts.append(max(cur.rowcount, 0))
                conn.commit()
            except self.db.errors() as exc:
                try:
                    conn.rollback()
                except self.db.errors():  # the connection is gone: a new one next time
                    self._conn = None
                raise StoreError(f"trace store write failed: {exc}") from exc
        return counts

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@dataclass(frozen=True)
class Deleted:
    decisions: int
    outcomes: int


def delete_before(conn: SideConnection, cutoff: float) -> Deleted:
    """Delete decisions made before `cutoff` (epoch s) with their outcomes, and outcomes
    received before it."""
    outcomes, decisions = conn.execute([
        ("DELETE FROM outcomes WHERE received_at < ? OR decision_id IN "
         "(SELECT decision_id FROM decisions WHERE created_at < ?)", (cutoff, cutoff)),
        ("DELETE FROM decisions WHERE created_at < ?", (cutoff,)),
    ])
    return Deleted(decisions, outcomes)


def forget_user(conn: SideConnection, user: str) -> Deleted:
    """Delete every decision whose request named `user`, their outcomes, and the outcomes
    (traces) posted with that user."""
    outcomes, decisions = conn.execute([
        ("DELETE FROM outcomes WHERE user_id = ? OR decision_id IN "
         "(SELECT decision_id FROM decisions WHERE user_id = ?)", (user, user)),
        ("DELETE FROM decisions WHERE user_id = ?", (user,)),
    ])
    return Deleted(decisions, outcomes)


class RetentionJob:
    """Runs `delete_before(now - retention_days)` at most every `every_s`; the closed loop
    ticks it from its background thread. Each run is counted in the log."""

    def __init__(self, conn: SideConnection, every_s: float = RETENTION_EVERY_S,
                 clock: Callable[[], float] = time.time):
        self.conn = conn
        self.every_s = every_s
        self.clock = clock
        self._last = -math.inf

    def tick(self, retention_days: float | None) -> Deleted | None:
        """Delete what is past retention if a run is due; what it deleted (None: not run)."""
        now = self.clock()
        if retention_days is None or now - self._last < self.every_s:
            return None
        self._last = now
        try:
            deleted = delete_before(self.conn, now - retention_days * 86_400)
        except StoreError as exc:
            log.warning("retention: %s", exc)
            return None
        log.info("retention: deleted %d decisions and %d outcomes older than %g days",
                 deleted.decisions, deleted.outcomes, retention_days,
                 extra={"event": "retention", "decisions": deleted.decisions,
                        "outcomes": deleted.outcomes, "retention_days": retention_days})
        return deleted
