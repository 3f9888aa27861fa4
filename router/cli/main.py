"""`tier-router` command line. Parsed in `main`, never at import; training is imported lazily."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from router.cli.loop import add_loop_commands
from router.cli.runs import add_run_commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.func(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tier-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the routing service")
    serve.add_argument("--config", type=Path, default=None, help="YAML/TOML config file")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--log-level", default="INFO", help="JSON logs on stderr at this level")
    serve.set_defaults(func=_serve)

    hash_key = sub.add_parser(
        "hash-key", help="print an auth.keys entry (sha256 only) for a key read from stdin")
    hash_key.add_argument("--generate", action="store_true",
                          help="make a new random key and print it once, instead of reading one")
    hash_key.add_argument("--name", default="client", help="who holds the key (shown in logs)")
    hash_key.add_argument("--scope", action="append", choices=["route", "feedback", "admin"],
                          help="repeat for several; default: route")
    hash_key.add_argument("--rate-per-minute", type=int, default=None)
    hash_key.set_defaults(func=_hash_key)

    train = sub.add_parser("train", help="train a model directory from labelled traces")
    train.add_argument("--config", type=Path, default=None)
    train.add_argument("--data-dir", type=Path, default=None,
                       help="the public data folder (e.g. ../shared/data)")
    train.add_argument("--traces", type=Path, nargs="*", default=[],
                       help="trace files in the TRACES.md format (JSONL, CSV, Parquet)")
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--strict", action="store_true", help="bad trace lines are fatal")
    train.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    train.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"],
                       help="encoder backend for training embeddings (fp32 torch: reference)")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="quality-versus-cost report of a model")
    evaluate.add_argument("--config", type=Path, default=None)
    evaluate.add_argument("--model", type=Path, default=None, help="model directory")
    evaluate.add_argument("--data-dir", type=Path, default=None)
    evaluate.add_argument("--traces", type=Path, nargs="*", default=[])
    evaluate.add_argument("--out", type=Path, required=True, help="report directory to write")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--strict", action="store_true")
    evaluate.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    evaluate.add_argument("--backend", default=None, choices=["torch", "onnx", "onnx-int8"],
                          help="encoder backend (default: the one the model was trained with)")
    evaluate.add_argument("--bootstrap", type=int, default=200,
                          help="bootstrap resamples for the confidence intervals")
    evaluate.add_argument("--lodo", action="store_true",
                          help="also leave one dataset out: refit the head without it, score it")
    evaluate.set_defaults(func=_evaluate)

    card = sub.add_parser("card", help="write MODEL_CARD.md from metadata and a report.json")
    card.add_argument("--model", type=Path, required=True, help="model directory")
    card.add_argument("--report", type=Path, required=True, help="report.json of evaluate")
    card.set_defaults(func=_card)
    add_loop_commands(sub)
    add_run_commands(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from router.api.app import create_app
    from router.config import load_settings
    from router.errors import ConfigError
    from router.guards.auth import check_bind
    from router.serving.logs import configure_logging
    from router.serving.threads import limit_native_threads

    configure_logging(args.log_level.upper())
    log = logging.getLogger("router.cli.main")
    settings = load_settings(args.config)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    try:
        check_bind(settings, host)
    except ConfigError as exc:
        log.error("refusing to start: %s", exc, extra={"event": "bind_refused", "host": host})
        return 2
    if settings.auth.keys:
        log.info("API keys required", extra={"event": "auth", "keys": len(settings.auth.keys)})
    else:
        log.warning("no API keys configured: the service is open, so it binds to loopback "
                    "(%s) only", host, extra={"event": "auth", "keys": 0, "host": host})
    app = create_app(args.config)
    limit_native_threads()  # after the imports that load the libraries: router/serving/threads.py
    uvicorn.run(app, host=host, port=port, workers=1, log_level=args.log_level.lower(),
                access_log=False, log_config=None)
    return 0


def _hash_key(args: argparse.Namespace) -> int:
    from router.guards.auth import hash_key, new_key

    if args.generate:
        key = new_key()
        print(f"# the key, shown once (give it to {args.name}; it is not stored anywhere):")
        print(f"# {key}")
    else:
        key = sys.stdin.readline().strip()
        if not key:
            print("hash-key: give the key on stdin, or --generate", file=sys.stderr)
            return 2
    scopes = ", ".join(args.scope or ["route"])
    print(f"- name: {args.name}\n  sha256: {hash_key(key)}\n  scopes: [{scopes}]")
    if args.rate_per_minute is not None:
        print(f"  rate_per_minute: {args.rate_per_minute}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from training.train import train

    train(settings=load_settings(args.config), out=args.out, cache_dir=args.cache_dir,
          data_dir=args.data_dir, traces=args.traces, seed=args.seed, strict=args.strict,
          backend=args.backend)
    return 0


def _card(args: argparse.Namespace) -> int:
    from training.card import write_card

    print(write_card(args.model, args.report))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from training.evaluate import evaluate
    from training.outputs import format_summary

    report = evaluate(
        settings=load_settings(args.config), out=args.out, cache_dir=args.cache_dir,
        model_dir=args.model, data_dir=args.data_dir, traces=args.traces, seed=args.seed,
        strict=args.strict, backend=args.backend, bootstrap=args.bootstrap, lodo=args.lodo,
    )
    print(format_summary(report["summary"]))
    print(f"\nwrote {args.out}/report.json")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
