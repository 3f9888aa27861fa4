"""Structured logs: one JSON object per line, so a log shipper needs no parser.

Fields passed with ``extra=`` become top-level keys. A routing decision logs one line carrying
its ``decision_id`` (`DecisionLog`, a recorder the holder gives every service).
"""

from __future__ import annotations

import json
import logging
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


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """JSON lines on stderr for this process, uvicorn's loggers included."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


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
