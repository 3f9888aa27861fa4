"""`tier-router` command line. Parsed in `main`, never at import; training is imported lazily.

Argument types and the one error boundary live in `args`: a mistake is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from router.cli.args import (
    CliError,
    Parser,
    config_option,
    existing_dir,
    existing_file,
    integer,
    model_dir,
    out_dir,
    run,
)
from router.cli.learned import add_map_commands
from router.cli.runs import add_run_commands
from router.cli.traffic import add_traffic_commands

DESCRIPTION = """\
A learned LLM request router: before each LLM call, the cheapest model tier that will still
answer it well. `serve` runs the HTTP service; the other commands make, evaluate and describe
models, and read or act on the traffic it served."""
EPILOG = "Run `tier-router COMMAND --help` for a command's options. Dates: " \
         "ISO 8601 (2026-11-01T09:30:00Z) or epoch seconds."
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
BACKENDS = ("torch", "onnx", "onnx-int8")
PORT_IN_USE_EXIT = 4  # `serve`: the port is taken (checked before the model is loaded)


def main(argv: Sequence[str] | None = None) -> int:
    from router.serving.logs import progress_bars_only_on_a_terminal

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    progress_bars_only_on_a_terminal()  # before the libraries that draw them are imported
    return run(args)


def _version() -> str:
    try:
        return version("tier-router")
    except PackageNotFoundError:  # a checkout used without `pip install -e .`
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tier-router", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"tier-router {_version()}",
                        help="print the installed version and exit")
    parser.add_argument("--traceback", action="store_true",
                        help="on an unexpected error, show the Python traceback (for a bug "
                             "report) instead of one line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the routing service")
    config_option(serve)
    serve.add_argument("--host", default=None,
                       help="address to bind (default: the config's host; without API keys "
                            "only a loopback address is allowed)")
    serve.add_argument("--port", type=integer(0, 65535), default=None,
                       help="TCP port (default: the config's port; 0: any free one)")
    serve.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                       help="log this level and above (default: INFO)")
    serve.add_argument("--log-format", default="json", choices=["json", "text"],
                       help="json: one JSON object per line on stderr, library loggers "
                            "included (default); text: plain lines for a terminal")
    serve.add_argument("--shadow", action="store_true",
                       help="every call a shadow call (the config's `shadow: true`): decide and "
                            "record, the agent keeps its own model; to measure before following")
    serve.set_defaults(func=_serve)

    hash_key = sub.add_parser(
        "hash-key", help="print an auth.keys entry (sha256 only) for a key read from stdin")
    hash_key.add_argument("--generate", action="store_true",
                          help="make a new random key and print it once, instead of reading one")
    hash_key.add_argument("--name", default="client", type=_key_name,
                          help="who holds the key, 1-64 characters (shown in logs and spend)")
    hash_key.add_argument("--scope", action="append", choices=["route", "feedback", "admin"],
                          help="repeat for several; default: route")
    hash_key.add_argument("--rate-per-minute", type=integer(1), default=None,
                          help="requests per minute this key may make (default: no limit)")
    hash_key.set_defaults(func=_hash_key)

    dashboard = sub.add_parser("dashboard", help="print the Grafana dashboard JSON (import it "
                                                 "in Grafana over the service's /metrics)")
    dashboard.set_defaults(func=_dashboard)

    train = sub.add_parser("train", help="train a model directory from labelled traces")
    config_option(train)
    train.add_argument("--data-dir", type=existing_dir, default=None,
                       help="the public data folder (e.g. ../shared/data)")
    train.add_argument("--traces", type=existing_file, nargs="*", default=[],
                       help="trace files in the TRACES.md format (JSONL, CSV, Parquet)")
    train.add_argument("--out", type=out_dir, required=True, help="model directory to write")
    train.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    train.add_argument("--strict", action="store_true", help="bad trace lines are fatal")
    train.add_argument("--cache-dir", type=out_dir, default=Path(".cache/embeddings"),
                       help="where computed embeddings are cached (default: .cache/embeddings)")
    train.add_argument("--backend", default="onnx", choices=BACKENDS,
                       help="encoder backend for training embeddings: onnx is the fp32 "
                            "reference (torch) on ONNX Runtime, the same vectors ~2.4x faster; "
                            "onnx-int8 is faster still but moves ~2%% of decisions")
    train.add_argument("--selection-groups", nargs="+", default=None, metavar="SOURCE",
                       help="sources held out in turn to choose the head ('all': every "
                            "source; default: the public benchmarks with a tier contrast)")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="quality-versus-cost report of a model")
    config_option(evaluate)
    evaluate.add_argument("--model", type=model_dir, default=None,
                          help="model directory (default: the config's model_dir)")
    evaluate.add_argument("--data-dir", type=existing_dir, default=None,
                          help="the public data folder (its test splits are scored)")
    evaluate.add_argument("--traces", type=existing_file, nargs="*", default=[],
                          help="trace files (TRACES.md format) scored as test rows")
    evaluate.add_argument("--out", type=out_dir, required=True, help="report directory to write")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    evaluate.add_argument("--strict", action="store_true", help="bad trace lines are fatal")
    evaluate.add_argument("--cache-dir", type=out_dir, default=Path(".cache/embeddings"),
                          help="where computed embeddings are cached "
                               "(default: .cache/embeddings)")
    evaluate.add_argument("--backend", default=None, choices=BACKENDS,
                          help="encoder backend (default: the one the model was trained "
                               "with; onnx for a torch model: the same fp32 vectors, faster)")
    evaluate.add_argument("--bootstrap", type=integer(0), default=200,
                          help="bootstrap resamples for the confidence intervals")
    evaluate.add_argument("--lodo", action="store_true",
                          help="also leave one dataset out: refit the head without it, score it")
    evaluate.set_defaults(func=_evaluate)

    card = sub.add_parser("card", help="write MODEL_CARD.md from metadata and a report.json")
    card.add_argument("--model", type=model_dir, required=True, help="model directory")
    card.add_argument("--report", type=existing_file, required=True,
                      help="report.json of evaluate")
    card.set_defaults(func=_card)
    add_traffic_commands(sub)
    add_run_commands(sub)
    add_map_commands(sub)
    return parser


def _key_name(text: str) -> str:
    if not 1 <= len(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be 1-64 characters. Got {len(text)}.")
    return text


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from router.api.app import create_app
    from router.api.server import header_limited
    from router.config import load_settings
    from router.errors import ConfigError
    from router.guards.auth import check_bind
    from router.serving.logs import configure_logging
    from router.serving.threads import limit_native_threads

    configure_logging(args.log_level, json_lines=args.log_format == "json")
    log = logging.getLogger("router.cli.main")
    overrides = _serve_overrides(args)
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        log.error("refusing to start: %s", exc, extra={"event": "start", "outcome": "refused",
                                                        "reason": str(exc)})
        return 2
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    try:
        check_bind(settings, host)
    except ConfigError as exc:
        log.error("refusing to start: %s", exc, extra={
            "event": "start", "outcome": "refused", "reason": str(exc), "host": host})
        return 2
    busy = port_in_use(host, port)
    if busy:
        log.error("refusing to start: %s", busy, extra={
            "event": "start", "outcome": "refused", "reason": busy, "host": host, "port": port})
        return PORT_IN_USE_EXIT
    log.info("starting tier-router %s on %s:%d", _version(), host, port, extra={
        "event": "start", "version": _version(), "host": host, "port": port, "pid": os.getpid(),
        "config": str(args.config or "router/default_config.yaml"),
        "model_dir": str(settings.model_dir), "backend": settings.embedder.backend})
    if settings.auth.keys:
        log.info("API keys required", extra={"event": "auth", "keys": len(settings.auth.keys)})
    else:
        log.warning("no API keys configured: the service is open, so it binds to loopback "
                    "(%s) only", host, extra={"event": "auth", "keys": 0, "host": host})
    if settings.shadow:
        log.info("shadow mode: every call is decided and recorded, the agent keeps its model",
                 extra={"event": "shadow"})
    app = create_app(args.config, overrides=overrides)
    limit_native_threads()  # after the imports that load the libraries: router/serving/threads.py
    # a port taken between the check above and this bind: one uvicorn log line, exit status 3
    uvicorn.run(app, host=host, port=port, workers=1, log_level=args.log_level.lower(),
                access_log=False, log_config=None,
                http=header_limited(settings.limits.max_header_bytes))
    return 0


def _serve_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings `serve`'s options set over the config file's."""
    return {"shadow": True} if args.shadow else {}


def port_in_use(host: str, port: int) -> str | None:
    """Why `host:port` cannot be bound (as uvicorn will bind it), or None when it can.

    Checked before the model loads, so a taken port costs a second, not the model's load."""
    import errno
    import socket

    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another tier-router?); "
                        "stop it or pick another with --port")
            return f"cannot bind {host}:{port}: {exc.strerror}"
    return None


def _hash_key(args: argparse.Namespace) -> int:
    from router.guards.auth import hash_key, new_key

    if args.generate:
        key = new_key()
        print(f"# the key, shown once (give it to {args.name}; it is not stored anywhere):")
        print(f"# {key}")
    else:
        key = sys.stdin.readline().strip()
        if not key:
            raise CliError("give the key on stdin, or --generate")
    scopes = ", ".join(args.scope or ["route"])
    print(f"- name: {args.name}\n  sha256: {hash_key(key)}\n  scopes: [{scopes}]")
    if args.rate_per_minute is not None:
        print(f"  rate_per_minute: {args.rate_per_minute}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from importlib.resources import files

    print(files("router.serving").joinpath("grafana_dashboard.json").read_text("utf-8"), end="")
    return 0


def _train(args: argparse.Namespace) -> int:
    from router.config import load_settings
    from training.train import train

    train(settings=load_settings(args.config), out=args.out, cache_dir=args.cache_dir,
          data_dir=args.data_dir, traces=args.traces, seed=args.seed, strict=args.strict,
          backend=args.backend, **_selection_groups(args.selection_groups))
    return 0



def _selection_groups(groups: list[str] | None) -> dict[str, Any]:
    """`train`'s selection_groups argument: unset keeps its default, 'all' is None."""
    if groups is None:
        return {}
    return {"selection_groups": None if groups == ["all"] else tuple(groups)}

def _card(args: argparse.Namespace) -> int:
    from training.card import write_card

    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{args.report} is not JSON: {exc}") from None
    missing = [k for k in ("in_distribution", "summary")
               if not isinstance(report, dict) or k not in report]
    if missing:
        raise CliError(f"{args.report} is not a report.json of `tier-router evaluate` "
                       f"(no {', '.join(missing) or 'mapping'})")
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
