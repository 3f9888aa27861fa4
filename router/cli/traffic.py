"""The subcommands over a service's recorded traffic: spend, export, retrain, promote. Heavy imports
stay inside."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, get_args

from router.cli.args import (
    WHEN_HELP,
    CliError,
    config_option,
    existing_dir,
    existing_file,
    integer,
    out_dir,
    out_file,
    public_source,
    public_source_part,
    read_key,
    when,
)
from router.cli.args import url as http_url
from router.cli.estimate import add_estimate_options, print_estimate, spend_estimate
from router.schemas import SpendKey

SPEND_KEYS = get_args(SpendKey)


def add_traffic_commands(sub: Any) -> None:
    """Register the subcommands on `tier-router`'s subparsers."""
    spend = sub.add_parser("spend", help="cost per role, run, step, tier, model, user or API key")
    config_option(spend)
    spend.add_argument("--by", choices=SPEND_KEYS, default="role",
                       help="what to group the cost by (default: role)")
    spend.add_argument("--since", type=when, default=None,
                       help=f"only calls from this moment on: {WHEN_HELP}")
    spend.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_estimate_options(spend)
    spend.set_defaults(func=_spend)

    export = sub.add_parser("export", help="write the trace store as TRACES.md JSONL/Parquet")
    config_option(export)
    export.add_argument("--out", type=out_file((".jsonl", ".parquet")), required=True,
                        help="a .jsonl or .parquet file (the format follows the suffix)")
    export.add_argument("--format", choices=["traces", "features", "audit"], default="traces",
                        help="traces: TRACES.md records (rows with text); features: the stored "
                             "embeddings and cheap features with their labels (no text needed); "
                             "audit: every decision and its outcome, if any")
    export.add_argument("--key", default=None, help="audit: only this API key's decisions")
    export.add_argument("--role", default=None, help="audit: only this role's decisions")
    export.add_argument("--run-id", default=None, help="audit: only this run's decisions")
    export.add_argument("--since", type=when, default=None,
                        help=f"only calls from this moment on: {WHEN_HELP}")
    export.set_defaults(func=_export)

    retrain = sub.add_parser("retrain", help="fit a candidate on logged traffic and compare it")
    config_option(retrain)
    retrain.add_argument("--out", type=out_dir, required=True, help="candidate model directory")
    retrain.add_argument("--data-dir", type=existing_dir, default=None,
                         help="public data: test splits for the comparison")
    retrain.add_argument("--public-sources", nargs="*", type=public_source, default=None,
                         help="public datasets to use (default: all)")
    retrain.add_argument("--mix-public", action="store_true",
                         help="also train on the public data's train split")
    retrain.add_argument("--since", type=when, default=None,
                         help=f"only logged calls from this moment on: {WHEN_HELP}")
    retrain.add_argument("--cache-dir", type=out_dir, default=Path(".cache/embeddings"),
                         help="where computed embeddings are cached (default: .cache/embeddings)")
    retrain.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    retrain.set_defaults(func=_retrain)

    learning = sub.add_parser("learning", help="inspect or reset the online learning state")
    config_option(learning)
    learning.add_argument("--reset", action="store_true",
                          help="forget what outcomes taught so far (the store keeps them); "
                               "running replicas follow within learning.refresh_s")
    learning.set_defaults(func=_learning)

    replay = sub.add_parser("replay", help="stream labelled traffic through a live service "
                                           "(/route, then /feedback) and print the learning curve")
    config_option(replay)
    replay.add_argument("--data-dir", type=existing_dir, default=None,
                        help="the shared data folder")
    replay.add_argument("--source", type=public_source_part, nargs="+", default=None,
                        help="data sets of --data-dir (routerbench, llmrouter, openmodels7, "
                             "alpacaeval, routerarena) or their parts (routerbench/mbpp), mixed")
    replay.add_argument("--traces", type=existing_file, default=None,
                        help="or a TRACES.md file")
    replay.add_argument("--holdout-source", type=public_source, nargs="+", default=None,
                        help="serve a prior fitted (serving recipe) without these data sets")
    replay.add_argument("--no-task-names", action="store_true",
                        help="withhold each call's category (its task) from the service")
    replay.add_argument("--role", default=None,
                        help="send this role with every call (default: none; one constant role "
                             "is one category that decides every call before the embedding "
                             "clusters)")
    replay.add_argument("--url", type=http_url, default=None,
                        help="an already running service (its tiers must be the source's); "
                             "default: start one with a fresh trace store in --work")
    replay.add_argument("--api-key-file", type=existing_file, default=None,
                        help="a file holding a key with the route, feedback and admin scopes")
    replay.add_argument("--tiers", nargs="+", default=None,
                        help="deploy only these tiers (default: every tier the source has "
                             "outcomes for), e.g. --tiers medium large")
    replay.add_argument("--orders", type=integer(1), default=5, help="shuffled orders")
    replay.add_argument("--learn", type=integer(1), default=1000,
                        help="outcomes before the freeze")
    replay.add_argument("--score", type=integer(1), default=500,
                        help="prompts scored after it")
    replay.add_argument("--window", type=integer(1), default=250,
                        help="learning-curve window")
    replay.add_argument("--seed", type=int, default=0, help="seed of the orders and fits")
    replay.add_argument("--no-ceiling", action="store_true",
                        help="skip the full-information ceiling (offline fits)")
    replay.add_argument("--work", type=out_dir, default=Path(".cache/replay"),
                        help="where the started service and the holdout prior live "
                             "(default: .cache/replay)")
    replay.add_argument("--cache-dir", type=out_dir, default=Path(".cache/embeddings"),
                        help="where computed embeddings are cached (default: .cache/embeddings)")
    replay.add_argument("--out", type=out_file((".json",)), default=None,
                        help="write the report JSON here")
    replay.set_defaults(func=_replay)

    tables = sub.add_parser("replay-report", help="the reports `replay --out` wrote, as "
                                                  "markdown tables with each figure's range "
                                                  "over orders and the targets")
    tables.add_argument("reports", type=existing_file, nargs="+", metavar="REPORT",
                        help="JSON reports of `tier-router replay --out`")
    tables.set_defaults(func=_replay_report)

    promote = sub.add_parser("promote", help="install a retrained candidate if it is not worse")
    config_option(promote)
    promote.add_argument("--candidate", type=existing_dir,
                         help="the directory `retrain --out` wrote")
    promote.add_argument("--url", type=http_url, default=None,
                         help="running service to reload, e.g. http://127.0.0.1:8000")
    promote.add_argument("--api-key-file", type=existing_file, default=None,
                         help="file holding an API key with the admin scope")
    promote.add_argument("--rollback", action="store_true", help="restore the previous model")
    promote.add_argument("--force", action="store_true", help="install even if refused")
    promote.set_defaults(func=_promote)


def _spend(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from router.traces.run_records import format_run_costs, run_costs
    from router.traces.shadow import shadow_report
    from router.traces.store import TraceStore

    settings = load_settings(args.config)
    store = TraceStore(settings.store).open()
    estimate, note = None, None
    try:
        rows = store.spend(args.by, args.since)
        shadow = shadow_report(store, settings, args.since)
        runs = run_costs(store, args.since)
        if not args.no_estimate:
            estimate, note = spend_estimate(args, settings, store)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"by": args.by, "since": args.since, "rows": rows,
                          "shadow": shadow.model_dump() if shadow else None,
                          "runs": runs.model_dump() if runs else None,
                          "estimate": estimate.model_dump() if estimate else None}, indent=2))
        return 0
    print(f"{args.by:<24} {'calls':>8} {'cost_usd':>12} {'actual':>12} {'estimated':>12} "
          f"{'est. calls':>10}")
    for r in rows:
        print(f"{str(r['key']):<24} {r['calls']:>8} {r['cost_usd']:>12.6f} "
              f"{r['actual_usd']:>12.6f} {r['estimated_usd']:>12.6f} {r['estimated_calls']:>10}")
    if estimate is not None:
        print()
        print_estimate(estimate)
    if note is not None:
        print(note)
    if shadow is not None:
        saved = (f"{shadow.saved_usd:+.6f} USD ({shadow.saved_fraction:.1%})"
                 if shadow.saved_fraction is not None else f"{shadow.saved_usd:+.6f} USD")
        print(f"shadow: {shadow.calls} calls, {shadow.with_outcome} with an outcome; followed "
              f"{shadow.followed_usd:.6f} USD, the router's picks {shadow.routed_usd:.6f} USD: "
              f"following it would save {saved}")
    if runs is not None:
        print(format_run_costs(runs))
    return 0


def _export(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from router.decision.encoders.base import DIMENSION, MODEL_NAME
    from router.traces.export import export_audit, export_features, export_traces
    from router.traces.store import TraceStore

    store = TraceStore(load_settings(args.config).store).open()
    try:
        if args.format == "audit":
            audit = store.audit_rows(args.since, args.key, args.role, args.run_id)
        else:
            rows = list(store.outcome_rows(args.since))
    finally:
        store.close()
    if args.format == "audit":
        print(f"wrote {export_audit(audit, args.out)} decisions to {args.out}")
        return 0
    if args.format == "features":
        written, reasons = export_features(rows, args.out, MODEL_NAME, DIMENSION)
        print(f"wrote {written} feature records to {args.out}"
              + (f" (skipped: {reasons})" if reasons else ""))
        return 0
    written, skipped = export_traces(rows, args.out)
    featured = sum(1 for r in rows if r.get("embedding") is not None
                   and not (r.get("prompt") or r.get("messages")))
    hint = f"; {featured} kept features: --format features" if featured else ""
    print(f"wrote {written} traces to {args.out}"
          + (f" (skipped: {skipped}{hint})" if skipped else ""))
    return 0


def _learning(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from router.decision.map_fit import fit_map
    from router.traces.evidence import EvidenceStore
    from router.traces.store import TraceStore

    settings = load_settings(args.config)
    store = TraceStore(settings.store).open()
    try:
        evidence = EvidenceStore(store, settings.learning)
        reset_at = store.learning_reset_at()
        if args.reset:
            reset_at = store.reset_learning()
            evidence.clear()
            print(f"learning state reset at {reset_at:.3f}")
        learned = fit_map(evidence.read(settings.tier_names), settings.tier_names,
                          settings.learning)
    finally:
        store.close()
    print(json.dumps({"enabled": settings.learning.enabled, "reset_at": reset_at,
                      **learned.snapshot()}, indent=2))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    import httpx
    import numpy as np

    from router.config import load_settings
    from router.decision.artifact import load_model
    from training.embed_cache import EmbeddingCache, embedding_backend, training_embedder
    from training.selection import head_recipe
    from training.traffic import replay as rp

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    settings = load_settings(args.config)
    traffic = rp.load_traffic(settings, args.data_dir, args.source, args.traces)
    tiers = rp.observed_tiers(traffic.table)
    if not tiers:
        raise CliError(f"{traffic.name} has no outcome of any configured tier's models: "
                       "nothing to replay")
    if args.tiers:
        unknown = [t for t in args.tiers if t not in tiers]
        if unknown:
            raise CliError(f"--tiers {unknown} have no outcomes in {traffic.name} "
                           f"(it has {tiers})")
        tiers = [t for t in tiers if t in args.tiers]
    if tiers != settings.tier_names:
        print(f"the service replays {traffic.name} on tiers {tiers} (of {settings.tier_names}: "
              "--tiers, or the tiers the source has outcomes for)")
    traffic = rp.restrict_tiers(traffic, tiers)
    serving = load_model(settings.model_dir)
    recipe = head_recipe(serving.metadata)
    cache = EmbeddingCache(args.cache_dir,
                           training_embedder(settings, embedding_backend(serving.metadata)))
    prior_dir = settings.model_dir
    if args.holdout_source:
        if args.data_dir is None:
            raise CliError("--holdout-source needs --data-dir")
        held = "+".join(args.holdout_source).replace("/", "-")
        prior_dir = rp.holdout_prior(settings, args.data_dir, args.holdout_source, recipe,
                                     args.work / f"prior-without-{held}", cache, args.seed)
    served = rp.replay_settings(settings, tiers).model_copy(update={"model_dir": prior_dir})
    key = read_key(args.api_key_file)
    headers = {"Authorization": f"Bearer {key}"} if key else None
    where = nullcontext(args.url) if args.url else rp.live_service(served, args.work / "service")
    try:
        with where as url, httpx.Client(base_url=url, timeout=60) as http:
            prior_version = http.get("/readyz").json()["router_version"]
            orders = rp.run_orders(http, traffic, served, orders=args.orders, learn=args.learn,
                                   score=args.score, window=args.window, seed=args.seed,
                                   headers=headers, with_task=not args.no_task_names,
                                   role=args.role)
    except httpx.HTTPError as exc:
        raise CliError(f"the service at {args.url or 'the started service'} failed: "
                       f"{type(exc).__name__}: {exc}") from None
    ceilings = [] if args.no_ceiling or args.traces else [
        rp.ceiling_apgr(traffic, np.array(o["scored"]), recipe, cache, args.seed)
        for o in orders]
    report = {"source": traffic.name, "url": url, "prior": prior_version, "tiers": tiers,
              "holdout_source": args.holdout_source, "learn": args.learn,
              "with_task": not args.no_task_names, "role": args.role,
              "score": args.score, "orders": orders, "ceilings": ceilings,
              "summary": rp.summarise(orders, ceilings)}
    if args.out is not None:
        rp.write_report(report, args.out)
    print(rp.format_replay(report))
    return 0


def _replay_report(args: argparse.Namespace) -> int:
    from training.traffic.replay_summary import markdown_tables, read_report

    for path in args.reports:
        print(f"<!-- {path} -->")
        print(markdown_tables(read_report(path)))
        print()
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from training.traffic.retrain import format_report, retrain

    report = retrain(
        settings=load_settings(args.config), out=args.out, cache_dir=args.cache_dir,
        data_dir=args.data_dir, public_sources=args.public_sources, mix_public=args.mix_public,
        since=args.since, seed=args.seed,
    )
    print(format_report(report))
    return 0


def _promote(args: argparse.Namespace) -> int:
    import httpx

    from router.config import load_settings
    from training.traffic.promote import promote, rollback

    settings = load_settings(args.config)
    key = read_key(args.api_key_file)
    if not args.rollback and args.candidate is None:
        raise CliError("give --candidate DIR (or --rollback)")
    if not args.rollback and not (args.candidate / "retrain_report.json").is_file():
        raise CliError(f"{args.candidate} is not a candidate `tier-router retrain --out` wrote "
                       "(no retrain_report.json)")
    try:
        if args.rollback:
            print(json.dumps(rollback(settings, args.url, key), indent=2))
            return 0
        result = promote(args.candidate, settings, args.url, key, force=args.force)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reload the service at {args.url}: {type(exc).__name__}: "
                       f"{exc}") from None
    print("\n".join(result["reasons"]))
    print("promoted" if result["promoted"] else "not promoted: the serving model stays")
    return 0 if result["promoted"] else 1
