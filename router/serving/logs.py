"""Structured logs: one JSON object per line, so a log shipper needs no parser.

Fields passed with ``extra=`` become top-level keys. A routing decision logs one line carrying
its ``decision_id`` (`serving.loop.DecisionLog`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

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
