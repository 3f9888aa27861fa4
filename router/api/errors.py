"""The one map from errors to HTTP answers: status, error text, metric kind, body and headers.

Every `RouterError` type is in `ERRORS` (a test checks it); a subclass not listed is answered
as its nearest listed base. Errors of the framework (unparseable body, 404, 405) and schema
errors are answered in the same shape: ``{"error": ..., "detail": ...}``, with ``detail`` a list
of ``{field, message, limit}`` for bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.errors import (
    ArtifactError,
    AuthError,
    BudgetExhausted,
    ConfigError,
    EscalationRefused,
    FeatureOff,
    FeedbackConflict,
    Forbidden,
    NoHealthyModel,
    NotFittedError,
    RateLimited,
    RequestLimitError,
    RouterError,
    RunCeilingReached,
    ServiceNotStarted,
    ServiceUnavailable,
    SharedStateUnavailable,
    StoreError,
    TraceError,
    UnknownDecision,
    UnknownRun,
)
from router.serving.prometheus import Metrics

log = logging.getLogger(__name__)


def _limit_body(exc: Exception) -> dict[str, Any]:
    assert isinstance(exc, RequestLimitError)
    return {"detail": [{"field": exc.field, "message": str(exc), "limit": exc.limit}]}


def _budget_body(exc: Exception) -> dict[str, Any]:
    assert isinstance(exc, BudgetExhausted)
    return {"budget": exc.name, "limit_usd": exc.limit_usd, "spent_usd": exc.spent_usd,
            "resets_at": exc.resets_at}


def _run_body(exc: Exception) -> dict[str, Any]:
    assert isinstance(exc, RunCeilingReached)
    return {"run_id": exc.run_id, "run_spend_usd": exc.spent_usd,
            "run_max_cost_usd": exc.cap_usd, "cap": exc.source}


def _escalation_body(exc: Exception) -> dict[str, Any]:
    assert isinstance(exc, EscalationRefused)
    body: dict[str, Any] = {}
    if exc.escalated_to is not None:
        body["escalated_to"] = exc.escalated_to
    if exc.limit is not None:
        body["limit"] = exc.limit
    return body


def _retry_after(exc: Exception) -> dict[str, str]:
    assert isinstance(exc, RateLimited | NoHealthyModel | UnknownDecision)
    return {"Retry-After": str(exc.retry_after)}


def _tier_body(exc: Exception) -> dict[str, Any]:
    assert isinstance(exc, NoHealthyModel)
    return {"tier": exc.tier}


@dataclass(frozen=True)
class Answer:
    """How one error type is answered."""

    status: int
    error: str
    kind: str  # the `kind` label of tier_router_errors_total
    body: Callable[[Exception], dict[str, Any]] | None = None  # merged over error/detail
    headers: Callable[[Exception], dict[str, str]] | None = None


ERRORS: dict[type[RouterError], Answer] = {
    RequestLimitError: Answer(422, "invalid request", "limit", body=_limit_body),
    AuthError: Answer(401, "unauthorized", "unauthorized",
                      headers=lambda _: {"WWW-Authenticate": "Bearer"}),
    Forbidden: Answer(403, "forbidden", "forbidden"),
    BudgetExhausted: Answer(402, "budget exhausted", "budget", body=_budget_body),
    RunCeilingReached: Answer(402, "run cap reached", "run_cap", body=_run_body),
    UnknownDecision: Answer(404, "unknown decision", "unknown_decision", headers=_retry_after),
    UnknownRun: Answer(404, "unknown run", "unknown_run"),
    FeatureOff: Answer(404, "not enabled", "feature_off"),
    FeedbackConflict: Answer(409, "feedback conflict", "feedback_conflict"),
    EscalationRefused: Answer(409, "escalation refused", "escalation_refused",
                              body=_escalation_body),
    ConfigError: Answer(409, "reload refused", "reload_refused"),
    RateLimited: Answer(429, "rate limited", "rate_limited", headers=_retry_after),
    SharedStateUnavailable: Answer(429, "shared limits unavailable", "shared_state",
                                   headers=_retry_after),
    ServiceUnavailable: Answer(503, "model unavailable", "unavailable"),
    ServiceNotStarted: Answer(503, "not started", "not_started"),
    NoHealthyModel: Answer(503, "no healthy model", "no_healthy_model", body=_tier_body,
                           headers=_retry_after),
    StoreError: Answer(503, "trace store unavailable", "store"),
    # Raised only inside loading, training or ingest, never by a request: a bug if one gets here.
    ArtifactError: Answer(500, "internal error", "internal"),
    NotFittedError: Answer(500, "internal error", "internal"),
    TraceError: Answer(500, "internal error", "internal"),
    RouterError: Answer(500, "internal error", "internal"),
}


# kinds counted outside the map: framework errors, schema errors, crashes, request timeouts
OTHER_KINDS = ("http", "validation", "internal", "timeout")


def answer_for(exc: RouterError) -> Answer:
    """The entry of the error's own type, else of its nearest listed base class."""
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return ERRORS[RouterError]


def add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Install the map on `app`; every answer counts in tier_router_errors_total by kind
    (each kind's series there from the start, at 0)."""
    for kind in {*(spec.kind for spec in ERRORS.values()), *OTHER_KINDS}:
        metrics.errors.labels(kind)

    @app.exception_handler(RouterError)
    async def router_error(_: Request, exc: RouterError) -> JSONResponse:
        spec = answer_for(exc)
        metrics.errors.labels(spec.kind).inc()
        if spec.status >= 500:
            log.error("%s reached the API: %s", type(exc).__name__, exc)
        body: dict[str, Any] = {"error": spec.error, "detail": str(exc)}
        if spec.body is not None:
            body.update(spec.body(exc))
        headers = spec.headers(exc) if spec.headers is not None else None
        return JSONResponse(body, spec.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Framework errors (unparseable body, 404, 405) in the same shape as ours."""
        metrics.errors.labels("http").inc()
        kind = HTTPStatus(exc.status_code).phrase.lower()
        return JSONResponse({"error": kind, "detail": exc.detail}, exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.errors.labels("validation").inc()
        detail = [_field_error(err) for err in exc.errors()]
        return JSONResponse({"error": "invalid request", "detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        metrics.errors.labels("internal").inc()
        return JSONResponse({"error": "internal error", "detail": type(exc).__name__}, 500)


def _field_error(err: Any) -> dict[str, Any]:
    """One schema error as {field, message, limit}: the field path without the 'body' root.
    A body that is not JSON names the character position where parsing stopped, as such."""
    if err.get("type") == "json_invalid":
        where = [p for p in err["loc"] if isinstance(p, int)]
        at = f" at character {where[0]}" if where else ""
        reason = (err.get("ctx") or {}).get("error")
        return {"field": "body", "message": f"the body is not valid JSON{at}"
                + (f": {reason}" if reason else "")}
    out = {"field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
           "message": err["msg"]}
    ctx = err.get("ctx") or {}
    for key in ("limit_value", "le", "ge"):
        if ctx.get(key) is not None:
            out["limit"] = ctx[key]
            break
    return out
