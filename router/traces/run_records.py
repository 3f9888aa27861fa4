"""The trace store's decisions read as agent runs: a run's ledger, the live runs, and the runs'
state to put back at start.

A run is the decisions carrying one ``run_id`` (under one API key for a keyed caller; every
key's for an admin), in time order. It ends after ``runs.expire_after_s`` without a call: a
later call with the same ``run_id`` starts a new run, so a ledger holds only the calls after
the last such gap. The rows stay in the store until retention or ``forget`` deletes them.

The SQL is this module's own, read through `TraceStore.read` (the reports' own connection:
clients poll these, and must never hold the connection feedback commits on). The live runs are
paged: the newest calls are read through the ``created_at`` index (``api_key, created_at`` for
one key's) until the page's runs are found, and only those runs' rows are read, so a page costs
the same with 30 or 30,000 live runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from router.errors import StoreError
from router.schemas import (
    RevisionRunCosts,
    RunCostFigures,
    RunCosts,
    RunKey,
    RunLedger,
    RunStep,
    RunSummary,
)
from router.traces.store import TraceStore

_STEPS = """
    SELECT d.decision_id, d.created_at, d.run_id, d.step, d.role, d.task, d.api_key, d.reason,
           d.shadow,
           COALESCE(o.tier, CASE WHEN d.shadow = 1 THEN NULL ELSE d.tier END) AS tier,
           COALESCE(o.model_used, CASE WHEN d.shadow = 1 THEN d.requested_model
                                       ELSE d.model END) AS model,
           d.tokens_in AS tokens_in_estimated, o.tokens_in, o.tokens_out,
           d.estimated_cost_usd, o.cost_usd, o.cost_estimated,
           ef.to_decision_id AS escalated_to, et.from_decision_id AS escalated_from,
           et.attempt
    FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.decision_id
    LEFT JOIN escalations ef ON ef.from_decision_id = d.decision_id
    LEFT JOIN escalations et ON et.to_decision_id = d.decision_id"""
_OWNER = " AND d.api_key = ?"
_NEWEST = """
    SELECT api_key, run_id FROM decisions
    WHERE created_at >= ? AND run_id IS NOT NULL{owner}
    ORDER BY created_at DESC"""  # the index's order: no sort of the window


def _step(row: dict[str, Any]) -> RunStep:
    reported = row["cost_usd"] if row["cost_usd"] is not None and not row["cost_estimated"] \
        else None
    cost = row["cost_usd"] if row["cost_usd"] is not None else row["estimated_cost_usd"]
    return RunStep(
        decision_id=row["decision_id"], created_at=float(row["created_at"]), step=row["step"],
        role=row["role"], task=row["task"], tier=row["tier"], model=row["model"],
        reason=row["reason"], shadow=bool(row["shadow"]),
        tokens_in_estimated=int(row["tokens_in_estimated"]), tokens_in=row["tokens_in"],
        tokens_out=row["tokens_out"],
        cost_estimated_usd=float(row["estimated_cost_usd"]),
        cost_reported_usd=None if reported is None else float(reported), cost_usd=float(cost),
        attempt=int(row["attempt"] or 1), escalated_from=row["escalated_from"],
        escalated_to=row["escalated_to"],
    )


def live_part(rows: Sequence[dict[str, Any]], expire_after_s: float) -> list[dict[str, Any]]:
    """The rows (time order) after the last gap longer than `expire_after_s`: the run that a
    call of these rows would continue (earlier ones belong to a run that ended)."""
    start = 0
    for i in range(1, len(rows)):
        if float(rows[i]["created_at"]) - float(rows[i - 1]["created_at"]) > expire_after_s:
            start = i
    return list(rows[start:])


def ledger_of(run_id: str, steps: Sequence[RunStep], expire_after_s: float,
              api_keys: Sequence[str | None] = ()) -> RunLedger:
    """Total, steps and most expensive step of a run's calls (at least one, time order)."""
    reported = sum(s.cost_reported_usd for s in steps if s.cost_reported_usd is not None)
    total = sum(s.cost_usd for s in steps)
    return RunLedger(
        run_id=run_id, api_keys=list(api_keys), calls=len(steps), total_usd=round(total, 8),
        estimated_usd=round(total - reported, 8), reported_usd=round(reported, 8),
        started_at=steps[0].created_at, last_call_at=steps[-1].created_at,
        expires_at=steps[-1].created_at + expire_after_s, steps=list(steps),
        most_expensive=max(steps, key=lambda s: (s.cost_usd, -s.created_at)),
    )


class RunRecords:
    """Runs as the store holds them. `owner`: None reads every key's calls (admin, an open
    service, the CLI); a key's name reads only that key's calls."""

    def __init__(self, store: TraceStore):
        self.store = store

    def ledger(self, run_id: str, expire_after_s: float, now: float,
               owner: str | None = None) -> RunLedger | None:
        """The run's ledger; None when the caller has no call in it, or it has expired."""
        sql = f"{_STEPS} WHERE d.run_id = ?{_OWNER if owner is not None else ''} " \
              "ORDER BY d.created_at, d.decision_id"
        rows = self.store.read(sql, (run_id, owner) if owner is not None else (run_id,))
        rows = live_part(rows, expire_after_s)
        if not rows or now - float(rows[-1]["created_at"]) > expire_after_s:
            return None
        keys = sorted({r["api_key"] for r in rows}, key=lambda k: (k is None, k or ""))
        return ledger_of(run_id, [_step(r) for r in rows], expire_after_s, keys)

    def outcome(self, key: str | None, run_id: str) -> dict[str, Any] | None:
        """The final outcome of `key`'s run (None: calls without a key): success, quality,
        reported_by, received_at."""
        rows = self.store.query("SELECT success, quality, reported_by, received_at FROM "
                                "run_outcomes WHERE api_key = ? AND run_id = ?",
                                (key or "", run_id))
        return rows[0] if rows else None

    def record_outcome(self, key: str | None, run_id: str, reported_by: str | None,
                       success: bool | None, quality: float | None,
                       at: float) -> dict[str, Any]:
        """Record the final outcome of `key`'s run unless it has one; returns the stored one
        (another replica's may have won: the caller compares)."""
        self.store.execute([("INSERT INTO run_outcomes (api_key, run_id, reported_by, success, "
                             "quality, received_at) VALUES (?, ?, ?, ?, ?, ?) "
                             "ON CONFLICT (api_key, run_id) DO NOTHING",
                             [(key or "", run_id, reported_by,
                               None if success is None else int(success), quality, at)])])
        stored = self.outcome(key, run_id)
        if stored is None:
            raise StoreError(f"run {run_id!r}: the outcome was not stored")
        return stored

    def live(self, since: float, expire_after_s: float,
             owner: str | None = None) -> dict[RunKey, list[dict[str, Any]]]:
        """Runs with a call at or after `since`: their live rows, by (key, run_id)."""
        sql = (f"{_STEPS} WHERE d.run_id IN (SELECT run_id FROM decisions WHERE created_at >= ?"
               f" AND run_id IS NOT NULL){_OWNER if owner is not None else ''} "
               "ORDER BY d.created_at, d.decision_id")
        rows = self.store.query(sql, (since, owner) if owner is not None else (since,))
        runs: dict[RunKey, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            runs[(row["api_key"] or "", row["run_id"])].append(row)
        out = {}
        for key, run_rows in runs.items():
            part = live_part(run_rows, expire_after_s)
            if float(part[-1]["created_at"]) >= since:
                out[key] = part
        return out

    def recent(self, now: float, expire_after_s: float, limit: int = 50,
               owner: str | None = None, offset: int = 0) -> tuple[list[RunSummary], bool]:
        """One page of the live runs (a call within `expire_after_s`), the latest call first:
        at most `limit` after the first `offset`, and whether
        more follow."""
        page = self._newest_runs(now - expire_after_s, owner, offset + limit + 1)
        more = len(page) > offset + limit
        page = page[offset:offset + limit]
        if not page:
            return [], more
        # the page's runs by their run_id index alone (a key filter here would lead the planner
        # to the key's index, every call of the key); other keys' calls are left out below
        ids = tuple(dict.fromkeys(run_id for _, run_id in page))
        sql = (f"{_STEPS} WHERE d.run_id IN ({', '.join('?' for _ in ids)}) "
               "ORDER BY d.created_at, d.decision_id")
        rows = self.store.read(sql, ids)
        runs: dict[RunKey, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            runs[(row["api_key"] or "", row["run_id"])].append(row)
        summaries = []
        for key in page:
            part = live_part(runs[key], expire_after_s)
            if not part:  # deleted since the page was read (retention, forget)
                continue
            summaries.append(RunSummary(
                run_id=key[1], api_key=key[0] or None, calls=len(part),
                total_usd=round(sum(_step(r).cost_usd for r in part), 8),
                last_call_at=float(part[-1]["created_at"])))
        return summaries, more

    def _newest_runs(self, since: float, owner: str | None, wanted: int) -> list[RunKey]:
        """The first `wanted` distinct runs among the calls since `since`, newest call first:
        reads the newest calls in growing slices, never more than the page needs (and a
        run's own calls)."""
        sql = _NEWEST.format(owner=" AND api_key = ?" if owner is not None else "")
        params = (since, owner) if owner is not None else (since,)
        rows_wanted = 4 * wanted
        while True:
            rows = self.store.read(sql, params, rows=rows_wanted)
            found = list(dict.fromkeys((r["api_key"] or "", r["run_id"]) for r in rows))
            if len(found) >= wanted or len(rows) < rows_wanted:
                return found[:wanted]
            rows_wanted *= 4

    def live_totals(self, now: float, expire_after_s: float) -> dict[RunKey, dict[str, Any]]:
        """What the run state holds of each live run (RunView's fields), from the store: a
        restarted service keeps its runs' spend, caps and sticky models."""
        out = {}
        for key, rows in self.live(now - expire_after_s, expire_after_s).items():
            out[key] = {"spend_usd": sum(_step(r).cost_usd for r in rows), "calls": len(rows),
                        "tier": rows[-1]["tier"], "model": rows[-1]["model"],
                        "started_at": float(rows[0]["created_at"]),
                        "last_call_at": float(rows[-1]["created_at"])}
        return out


# One row per run (key, run_id) with a call since `?`: its calls, cost (reported where feedback
# gave one, else the decision's estimate), the map revision of its first call in the period,
# and its final outcome if reported.
_RUN_COSTS = """
    SELECT r.api_key, r.run_id, r.calls, r.cost,
           (SELECT MIN(f.map_revision) FROM decisions f
            WHERE f.run_id = r.run_id AND COALESCE(f.api_key, '') = r.api_key
              AND f.created_at = r.first_at) AS revision,
           ro.success, ro.quality, CASE WHEN ro.run_id IS NULL THEN 0 ELSE 1 END AS reported
    FROM (SELECT COALESCE(d.api_key, '') AS api_key, d.run_id AS run_id, COUNT(*) AS calls,
                 SUM(COALESCE(o.cost_usd, d.estimated_cost_usd)) AS cost,
                 MIN(d.created_at) AS first_at
          FROM decisions d
          LEFT JOIN (SELECT decision_id, MAX(cost_usd) AS cost_usd FROM outcomes
                     WHERE decision_id IS NOT NULL GROUP BY decision_id) o
                 ON o.decision_id = d.decision_id
          WHERE d.run_id IS NOT NULL AND d.created_at >= ?
          GROUP BY COALESCE(d.api_key, ''), d.run_id) r
    LEFT JOIN run_outcomes ro ON ro.api_key = r.api_key AND ro.run_id = r.run_id"""

MAX_REVISION_BANDS = 8  # the report's groups by map revision, at most (plus "no learned map")


def _succeeded(row: dict[str, Any]) -> bool:
    if row["success"] is not None:
        return bool(row["success"])
    return float(row["quality"] or 0.0) >= 0.5


def _costs(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """RunCosts' fields over `rows` (at least one run)."""
    calls = sum(int(r["calls"]) for r in rows)
    total = sum(float(r["cost"] or 0.0) for r in rows)
    reported = [r for r in rows if r["reported"]]
    wins = [r for r in reported if _succeeded(r)]
    spent = sum(float(r["cost"] or 0.0) for r in reported)
    return {"runs": len(rows), "calls": calls, "cost_per_call_usd": total / calls,
            "cost_per_run_usd": total / len(rows), "with_outcome": len(reported),
            "successful": len(wins),
            "cost_per_successful_run_usd": spent / len(wins) if wins else None}


def revision_bands(revisions: Sequence[int], bands: int = MAX_REVISION_BANDS) -> list[range]:
    """Consecutive bands of the sorted revisions (one run each in `revisions`), at most
    `bands`, of about equal runs; a revision is never split across two bands."""
    counts: dict[int, int] = defaultdict(int)
    for revision in revisions:
        counts[revision] += 1
    ordered = sorted(counts)
    if len(ordered) <= bands:
        return [range(r, r + 1) for r in ordered]
    out: list[range] = []
    start, filled, left = ordered[0], 0, len(revisions)
    for i, revision in enumerate(ordered):
        filled += counts[revision]
        last = i == len(ordered) - 1
        if last or filled >= left / (bands - len(out)):  # its share of the runs still left
            out.append(range(start, revision + 1))
            left -= filled
            filled = 0
            if not last:
                start = ordered[i + 1]
    return out


def run_costs(store: TraceStore, since: float | None) -> RunCosts | None:
    """Cost per call, per run and per successful run of the runs with a call since `since`,
    overall and by the map revision of each run's first call (in bands when there are many);
    None: no run."""
    rows = store.read(_RUN_COSTS, (since or 0.0,))
    if not rows:
        return None
    groups: list[RevisionRunCosts] = []
    unmapped = [r for r in rows if r["revision"] is None]
    if unmapped:
        groups.append(RevisionRunCosts(revision_from=None, revision_to=None, **_costs(unmapped)))
    mapped = [r for r in rows if r["revision"] is not None]
    for band in revision_bands([int(r["revision"]) for r in mapped]):
        members = [r for r in mapped if int(r["revision"]) in band]
        groups.append(RevisionRunCosts(revision_from=band.start, revision_to=band.stop - 1,
                                       **_costs(members)))
    return RunCosts(**_costs(rows), by_revision=groups)


def format_run_costs(runs: RunCosts) -> str:
    """The runs part of the spend report as `tier-router spend` prints it: cost per call, per
    run and per successful run, overall and by the map revision of each run's first call."""
    def line(name: str, g: RunCostFigures) -> str:
        per_win = ("-" if g.cost_per_successful_run_usd is None
                   else f"{g.cost_per_successful_run_usd:.6f}")
        return (f"{name:<16} {g.runs:>6} {g.calls:>7} {g.cost_per_call_usd:>10.6f} "
                f"{g.cost_per_run_usd:>10.6f} {g.with_outcome:>8} {g.successful:>10} "
                f"{per_win:>12}")

    out = [f"{'runs by map rev.':<16} {'runs':>6} {'calls':>7} {'usd/call':>10} {'usd/run':>10} "
           f"{'outcome':>8} {'successful':>10} {'usd/success':>12}", line("all", runs)]
    for g in runs.by_revision:
        name = ("no map" if g.revision_from is None else f"{g.revision_from}" if
                g.revision_from == g.revision_to else f"{g.revision_from}-{g.revision_to}")
        out.append(line(name, g))
    out.append("a run's map revision: its first call's (labelled outcomes the learned map had "
               "learned); usd/success: what the runs with an outcome cost, over the successful")
    return "\n".join(out)
