"""`tier-router runs [RUN_ID]` (a run's ledger, or the live runs) and `tier-router forget
--user U`, read from and written to the trace store directly: no server needed."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from router.cli.args import config_option, integer


def add_run_commands(sub: Any) -> None:
    """Register the subcommands on `tier-router`'s subparsers."""
    runs = sub.add_parser("runs", help="a run's ledger (every step, its model, tokens and "
                                       "cost), or the live runs")
    runs.add_argument("run_id", nargs="?", default=None, help="the run; none: list live runs")
    config_option(runs)
    runs.add_argument("--key", default=None, help="only this API key's calls")
    runs.add_argument("--limit", type=integer(1), default=50,
                      help="listing: at most this many runs")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(func=_runs)

    forget = sub.add_parser("forget", help="delete a user's decisions and outcomes")
    forget.add_argument("--user", required=True, help="the requests' `user` field")
    config_option(forget)
    forget.set_defaults(func=_forget)


def _runs(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from router.schemas import RunOutcomeInfo
    from router.traces.run_records import RunRecords
    from router.traces.store import TraceStore

    settings = load_settings(args.config)
    expire = settings.runs.expire_after_s
    store = TraceStore(settings.store).open()  # creates or migrates the schema
    records = RunRecords(store)
    try:
        if args.run_id is None:
            listing, _ = records.recent(time.time(), expire, args.limit, args.key)
        else:
            ledger = records.ledger(args.run_id, expire, time.time(), args.key)
            keys = [args.key] if args.key is not None else ledger.api_keys if ledger else []
            outcome = records.outcome(keys[0], args.run_id) if len(keys) == 1 else None
    finally:
        store.close()
    if args.run_id is None:
        if args.json:
            print(json.dumps({"runs": [r.model_dump(mode="json") for r in listing]}, indent=2))
            return 0
        print(f"{'run_id':<28} {'api_key':<16} {'calls':>6} {'total_usd':>12}  last call (UTC)"
              "   (total: reported costs where /feedback gave one, else estimates)")
        for r in listing:
            print(f"{r.run_id:<28} {str(r.api_key):<16} {r.calls:>6} {r.total_usd:>12.6f}  "
                  f"{_utc(r.last_call_at)}")
        return 0
    if ledger is None:
        print(f"no live run {args.run_id!r}" + (f" of key {args.key!r}" if args.key else "")
              + f" (runs expire {expire:g} s after their last call: runs.expire_after_s)")
        return 1
    if outcome is not None:
        ledger.outcome = RunOutcomeInfo(
            success=None if outcome["success"] is None else bool(outcome["success"]),
            quality=outcome["quality"], api_key=outcome["reported_by"],
            received_at=float(outcome["received_at"]))
    if args.json:
        print(ledger.model_dump_json(indent=2))
        return 0
    print(f"run {ledger.run_id}: {ledger.calls} calls, {ledger.total_usd:.6f} USD "
          f"({ledger.reported_usd:.6f} reported, {ledger.estimated_usd:.6f} estimated); keys "
          f"{', '.join(str(k) for k in ledger.api_keys)}; expires {_utc(ledger.expires_at)}")
    print(f"{'time (UTC)':<20} {'step':<8} {'role':<12} {'task':<12} {'tier':<8} "
          f"{'model':<28} {'tok in':>7} {'tok out':>7} {'est. usd':>10} {'rep. usd':>10} "
          f"{'usd':>10}")
    for s in ledger.steps:
        tokens_in = s.tokens_in if s.tokens_in is not None else s.tokens_in_estimated
        reported = "" if s.cost_reported_usd is None else f"{s.cost_reported_usd:.6f}"
        print(f"{_utc(s.created_at):<20} {str(s.step):<8} {str(s.role):<12} {str(s.task):<12} "
              f"{str(s.tier):<8} {str(s.model):<28} {tokens_in:>7} {_dash(s.tokens_out):>7} "
              f"{s.cost_estimated_usd:>10.6f} {reported:>10} {s.cost_usd:>10.6f}")
    print(f"{'':<20} {'':<8} {'':<12} {'':<12} {'':<8} {'total':<28} {'':>7} {'':>7} "
          f"{sum(s.cost_estimated_usd for s in ledger.steps):>10.6f} "
          f"{ledger.reported_usd:>10.6f} {ledger.total_usd:>10.6f}")
    print("est. usd: the decision's estimate; rep. usd: the cost its /feedback reported; usd: "
          "the one counted (reported where it came back, else estimated), summing to the run's "
          "total. tok in: reported, else estimated.")
    top = ledger.most_expensive
    print(f"most expensive: step {top.step} ({top.model}, {top.cost_usd:.6f} USD, "
          f"decision {top.decision_id})")
    done = ledger.outcome
    print("outcome: not reported (POST /runs/{run_id}/outcome)" if done is None else
          f"outcome: success {done.success}, quality {done.quality} (reported by "
          f"{done.api_key} at {_utc(done.received_at)})")
    return 0


def _forget(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from router.traces.retention import SideConnection, forget_user
    from router.traces.store import TraceStore

    store = TraceStore(load_settings(args.config).store).open()
    conn = SideConnection(store.db)
    try:
        deleted = forget_user(conn, args.user)
    finally:
        conn.close()
        store.close()
    print(f"deleted {deleted.decisions} decisions and {deleted.outcomes} outcomes of user "
          f"{args.user!r}")
    return 0


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)
