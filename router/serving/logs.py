"""Structured logs: one JSON object per line, so a log shipper needs no parser.

Fields passed with ``extra=`` become top-level keys. A routing decision logs one line carrying
its ``decision_id`` (`DecisionLog`, a recorder the holder gives every service).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from router.config import Settings
from router.decision.features import CallView
from router.schemas import RouteDecision, RouteRequest
from router.traces.rows import Seen

decision_log = logging.getLogger("router.decisions")

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}  # uvicorn's copy of msg with terminal colours


# json.dumps with options builds an encoder per call; one line per decision makes that count.
_encode = json.JSONEncoder(default=str, ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    """ts, level, logger, msg, then every ``extra`` field; exceptions as one string."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and key[:1] != "_":
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out)


# Libraries that log on their own loggers: routed through our handler, their INFO chatter
# (one line per ONNX graph pass, per HTTP request, per file looked up) kept out unless DEBUG.
QUIET_LIBRARIES = ("onnxruntime", "onnx", "transformers", "sentence_transformers", "torch",
                   "huggingface_hub", "httpx", "httpcore", "urllib3", "filelock", "matplotlib",
                   "numexpr", "asyncio", "multipart")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_SITE = ("site-packages", "dist-packages")


class LibraryRecords(logging.Filter):
    """Names what a library logged on the root logger after the library; drops its INFO
    (unless the log level is DEBUG).

    onnxruntime's quantiser (and others) call `logging.info(...)` on the root logger, so a cold
    start wrote dozens of lines under logger `root`. They are told apart by their source file.
    """

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "root":
            return True
        library = _library_of(record.pathname)
        if library is None:
            return True
        record.name = library
        return record.levelno >= (logging.WARNING if self.level > logging.DEBUG else self.level)


def _library_of(pathname: str) -> str | None:
    parts = pathname.replace("\\", "/").split("/")
    for marker in _SITE:
        if marker in parts:
            rest = parts[parts.index(marker) + 1:]
            return rest[0].removesuffix(".py") if rest else None
    return None


def configure_logging(level: str = "INFO", stream: IO[str] | None = None,
                      json_lines: bool = True) -> None:
    """One handler on the root logger for this process: JSON lines (or plain text) on stderr.

    Library loggers (uvicorn, onnxruntime, transformers, sentence_transformers, ...) lose
    their own handlers and propagate to it; Python warnings become log records too. A library
    configured later (transformers sets up its handler on first use) is adopted again by
    `adopt_library_loggers`, which the holder calls once the model is loaded.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    numeric = logging.getLevelName(level.upper())
    handler.addFilter(LibraryRecords(numeric))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.captureWarnings(False)  # a second set-up (tests) re-captures the current hook
    logging.captureWarnings(True)
    for name in UVICORN_LOGGERS:  # before uvicorn's Config, which turns the access log off
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    adopt_library_loggers()


def adopt_library_loggers() -> None:
    """Route the quiet libraries' loggers through the root handler, below WARNING dropped.

    Under DEBUG nothing is quietened. Idempotent: safe to call after each model load.
    """
    quiet = logging.getLogger().level > logging.DEBUG
    for name in QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.WARNING if quiet else logging.NOTSET)
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:  # its own handler, propagation off, installed on first use
        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
    _quiet_onnxruntime(quiet)


def _quiet_onnxruntime(quiet: bool) -> None:
    """onnxruntime's C++ logger writes to stderr itself: only its errors, unless DEBUG."""
    ort = sys.modules.get("onnxruntime")
    if ort is not None and hasattr(ort, "set_default_logger_severity"):
        ort.set_default_logger_severity(3 if quiet else 2)


def progress_bars_only_on_a_terminal(stream: IO[str] | None = None) -> bool:
    """Turn tqdm bars off (transformers' "Loading weights", hub downloads) unless `stream`
    (stderr) is a terminal: in a log file they are noise between the JSON lines.

    The libraries read these switches from the environment when they are imported, so this
    runs before they are; a value the user set is kept. Returns whether bars stay on."""
    stream = stream or sys.stderr
    on = bool(getattr(stream, "isatty", lambda: False)())
    if not on:
        for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(name, "1")
    return on


class DecisionLog:
    """A decision recorder: one log line per decision, carrying its ``decision_id`` (the key that
    joins a log line to its trace and its feedback). Prompt text never enters a log unless
    ``store.prompt_storage`` is ``full``; then the line also carries ``routed_text``, the
    (bounded) text the classifier read."""

    def __init__(self, settings: Settings):
        self.with_text = settings.store.prompt_storage == "full"

    def record(self, request: RouteRequest, view: CallView, decision: RouteDecision,
               seen: Seen | None = None) -> None:
        if not decision_log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "event": "decision",
            "decision_id": decision.decision_id,
            "tier": decision.tier,
            "model_name": decision.model,
            "reason": decision.reason,
            "router_version": decision.router_version,
            "tokens_in": decision.estimated_tokens_in,
            "cost_usd": decision.estimated_cost_usd,
        }
        for key in ("task", "run_id", "role", "step"):
            value = getattr(request, key)
            if value is not None:
                fields[key] = value
        if decision.detail:
            fields["detail"] = decision.detail
        if self.with_text:
            fields["routed_text"] = view.text
        # log.info("decision", extra=fields) without its look-up of the calling source line
        # (findCaller walks the stack; the JSON line never shows it): ~10 us a decision.
        decision_log.handle(decision_log.makeRecord(
            decision_log.name, logging.INFO, "", 0, "decision", (), None, extra=fields))
