"""The trace store's reads for reports: spend, the rows export and retraining read, the audit,
and what the online learning state reads. Each is one SQL query through `query` (the durable
connection) or, for what clients may poll (spend), `read` (the reports' own connection);
`TraceStore` has them as methods. Nothing here writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args

from router.errors import StoreError
from router.schemas import SpendKey
from router.traces.db import (
    AUDIT_SQL,
    CALLS_SQL,
    JOINED_SQL,
    LEARNED_COUNT_SQL,
    LEARNING_ROWS_SQL,
)

# /spend's `by` -> the column of CALLS_SQL it groups on
SPEND_KEYS = {key: {"user": "user_id"}.get(key, key) for key in get_args(SpendKey)}
LEARNING_RESET_KEY = "learning_reset_at"  # the store_meta key of the last learning reset


class StoreReads:
    """Report queries over a store that has `query(sql, params)`."""

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def read(self, sql: str, params: tuple[Any, ...] = (),
             rows: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def spend(
        self, by: str, since: float | None = None, only: str | None = None,
        keyed_traces: bool = True, limit: int | None = None, offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Cost per `by` key (only the `only` value of it, if given): feedback cost where it
        came back, else estimated (and counted); the costliest first (ties by key), at most
        `limit` rows after the first `offset`. `keyed_traces` False leaves out outcomes a key
        posted without a decision (they count toward that key's own budget only)."""
        if by not in SPEND_KEYS:
            raise StoreError(f"The 'by' parameter must be one of {sorted(SPEND_KEYS)}. "
                             f"Got {by!r} instead.")
        key = SPEND_KEYS[by]
        start = since if since is not None else 0.0
        where = ["1 = 1"]
        params: list[Any] = [start, start]  # CALLS_SQL's own: since, per branch
        if only is not None:
            where.append(f"{key} = ?")
            params.append(only)
        if not keyed_traces:
            where.append("NOT (routed = 0 AND api_key IS NOT NULL)")
        sql = f"""
            SELECT {key} AS key, COUNT(*) AS calls,
                   SUM(CASE WHEN est = 0 THEN cost ELSE 0 END) AS actual_usd,
                   SUM(CASE WHEN est = 1 THEN cost ELSE 0 END) AS estimated_usd,
                   SUM(est) AS estimated_calls
            FROM ({CALLS_SQL}) calls WHERE {' AND '.join(where)}
            GROUP BY {key} ORDER BY SUM(cost) DESC, {key}"""
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        rows = self.read(sql, tuple(params))
        for row in rows:
            row["actual_usd"] = float(row["actual_usd"] or 0.0)
            row["estimated_usd"] = float(row["estimated_usd"] or 0.0)
            row["cost_usd"] = row["actual_usd"] + row["estimated_usd"]
            row["estimated_calls"] = int(row["estimated_calls"] or 0)
            row["calls"] = int(row["calls"])
        return rows

    def outcome_rows(self, since: float | None = None) -> Iterator[dict[str, Any]]:
        """Every outcome joined to its decision, oldest first (export and retraining)."""
        rows = self.query(f"{JOINED_SQL} WHERE o.received_at >= ? ORDER BY t, o.feedback_id",
                          (since if since is not None else 0.0,))
        yield from rows

    def learning_rows(self, limit: int, since: float = 0.0) -> list[dict[str, Any]]:
        """The newest `limit` outcomes of routed decisions received after `since`, oldest first,
        with what learning reads of their decision."""
        return self.query(LEARNING_ROWS_SQL, (since, limit))[::-1]

    def learned_count(self, since: float = 0.0) -> int:
        """How many outcomes of routed decisions were received after `since`."""
        return int(self.query(LEARNED_COUNT_SQL, (since,))[0]["n"])

    def learning_reset_at(self) -> float:
        """When the learning state was last reset (epoch seconds; 0 if never)."""
        rows = self.query("SELECT value FROM store_meta WHERE key = ?",
                          (LEARNING_RESET_KEY,))
        return float(rows[0]["value"]) if rows else 0.0

    def audit_rows(
        self, since: float | None = None, api_key: str | None = None, role: str | None = None,
        run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every decision with its outcome, if one came back, oldest first; filtered by the
        key, role and run given (an operator replays what one agent did)."""
        where = ["d.created_at >= ?"]
        params: list[Any] = [since if since is not None else 0.0]
        for column, value in (("api_key", api_key), ("role", role), ("run_id", run_id)):
            if value is not None:
                where.append(f"d.{column} = ?")
                params.append(value)
        return self.query(
            f"{AUDIT_SQL} WHERE {' AND '.join(where)} ORDER BY d.created_at, d.decision_id",
            tuple(params))
