"""`tier-router map`: the learned map as a table, one category a row, read from the trace
store directly (no server needed; the same rows as GET /map)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from router.cli.args import CliError, config_option, integer


def add_map_commands(sub: Any) -> None:
    """Register the subcommand on `tier-router`'s subparsers."""
    shown = sub.add_parser("map", help="the learned map: per category its evidence per tier, "
                                       "the tier chosen at quality_target and why, the saving")
    config_option(shown)
    shown.add_argument("--key", default=None, help="only this API key's categories ('-': "
                                                   "calls without a key)")
    shown.add_argument("--role", default=None, help="only categories with this role")
    shown.add_argument("--task", default=None, help="only categories with this task")
    shown.add_argument("--tier", default=None, help="only categories choosing this tier")
    shown.add_argument("--limit", type=integer(1), default=50, help="at most this many rows")
    shown.add_argument("--offset", type=integer(0), default=0, help="skip this many rows")
    shown.add_argument("--json", action="store_true", help="print JSON instead of a table")
    shown.set_defaults(func=_map)


def _map(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from router.decision.choice import TierTable
    from router.decision.map_fit import fit_map
    from router.decision.map_view import MapFilter, map_rows, roll_up
    from router.traces.evidence import EvidenceStore, call_counts
    from router.traces.store import TraceStore

    settings = load_settings(args.config)
    tiers = settings.tier_names
    if args.tier is not None and args.tier not in tiers:
        raise CliError(f"--tier {args.tier!r} is not one of the tiers {tiers}")
    if not settings.learning.enabled:
        raise CliError("learning is off in this config (learning.enabled: false): no map")
    store = TraceStore(settings.store).open()
    try:
        learned = fit_map(EvidenceStore(store, settings.learning).read(tiers), tiers,
                          settings.learning)
        counts = roll_up(call_counts(store, store.learning_reset_at()),
                         settings.learning.category_fields, tiers)
    finally:
        store.close()
    where = MapFilter("" if args.key == "-" else args.key, args.role, args.task, args.tier)
    total, rows = map_rows(learned, settings.quality_target, TierTable.of(settings), counts,
                           where, args.offset, args.limit,
                           tokens_out=settings.expected_output_tokens)
    if args.json:
        print(json.dumps({"revision": learned.revision, "total": total, "categories": rows},
                         indent=2))
        return 0
    print(f"learned map: {total} categories, {learned.revision} outcomes learned, "
          f"quality_target {settings.quality_target:g}; showing {len(rows)} from {args.offset}")
    if not rows:
        return 0
    width = max(24, *(len(r["category"]) for r in rows))
    head = "".join(f"  {t[:10]:>24}" for t in tiers)
    print(f"{'category':<{width}} {'outcomes':>8} {'chosen':>8} {'why':>8} {'saving':>7} "
          f"{'explored':>8}{head}")
    for r in rows:
        cells = "".join(f"  {_tier_cell(t):>24}" for t in r["tiers"])
        explored = "-" if r["explored_share"] is None else f"{r['explored_share']:.1%}"
        print(f"{r['category']:<{width}} {r['outcomes']:>8.0f} {r['chosen']:>8} {r['why']:>8} "
              f"{r['saving']:>7.1%} {explored:>8}{cells}")
    print("per tier: quality relative to the strongest [interval] (labelled outcomes); why: "
          "evidence, prior, pin or cold; saving: against the strongest tier, nominal call")
    return 0


def _tier_cell(tier: dict[str, Any]) -> str:
    n = "-" if tier["outcomes"] is None else str(tier["outcomes"])
    return f"{tier['ratio']:.2f} [{tier['ratio_low']:.2f},{tier['ratio_high']:.2f}] ({n})"
