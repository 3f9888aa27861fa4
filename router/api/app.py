"""The FastAPI app: lifespan, routes, and the one place errors become HTTP answers."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.api.lean_route import lean_route
from router.api.middleware import RequestTimeLimit
from router.api.openapi import configured_openapi
from router.api.routes.feedback import router as feedback_router
from router.config import EmbedderConfig, Settings
from router.decision.encoders.backends import make_embedder
from router.decision.encoders.base import Embedder
from router.errors import (
    AuthError,
    BudgetExhausted,
    ConfigError,
    FeedbackConflict,
    RateLimited,
    RequestLimitError,
    RouterError,
    ServiceUnavailable,
    StoreError,
    UnknownDecision,
)
from router.guards.auth import AdminAuth, KeyRing, RouteAuth, RouteAuthFlat
from router.schemas import (
    BatchRouteRequest,
    BatchRouteResponse,
    Readiness,
    RouteDecision,
    RouteRequest,
    TierInfo,
    error_responses,
)
from router.serving.holder import ServiceHolder
from router.serving.logs import decision_logger
from router.serving.metrics import Metrics
from router.serving.service import RouterService

log = logging.getLogger(__name__)


def create_app(
    config_path: Path | None = None,
    settings: Settings | None = None,
    embedder_factory: Callable[[EmbedderConfig], Embedder] | None = None,
) -> FastAPI:
    """Build the app; the model loads in the lifespan, never at import."""
    metrics = Metrics()
    holder = ServiceHolder(config_path, metrics, settings, embedder_factory or make_embedder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(holder.start)
        holder.service.on_decision.append(decision_logger(lambda: holder.settings))
        _install_sighup(holder)
        holder.batcher.start()
        # The ~150k objects of the loaded libraries and model never die; the cyclic GC's full
        # collections walked them all (60-200 ms, a stall of every queued /route call: the c8
        # p99). Frozen, they are never scanned again: full collections take well under 1 ms.
        gc.freeze()
        yield
        await holder.batcher.stop()  # queued /route calls are answered before the store closes
        holder.stop()
        gc.unfreeze()  # back to collectable (several apps in one process: the tests)

    app = FastAPI(title="tier-router", version="0.1.0", lifespan=lifespan)
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.keyring = KeyRing(lambda: holder.settings)
    app.openapi = configured_openapi(app, lambda: holder.settings)  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimit, holder=holder)
    app.add_middleware(RequestTimeLimit, settings=lambda: holder.settings,
                       on_timeout=metrics.errors.labels("timeout").inc)
    _add_error_handlers(app, metrics)
    _add_routes(app)
    app.include_router(feedback_router)
    return app


async def get_service(request: Request) -> RouterService:
    return request.app.state.holder.service  # async: a sync dependency costs a thread hop


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


ServiceDep = Annotated[RouterService, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def _route_one(body: RouteRequest, request: Request) -> Response:
    started = time.perf_counter()
    decision = await request.app.state.holder.batcher.route(body)  # see router/serving/batcher.py
    _count(request.app.state.metrics, [decision], started)
    # serialised straight from the model: FastAPI would validate the response model again
    return Response(decision.model_dump_json(exclude_none=True), media_type="application/json")


async def _serve_route(
    body: RouteRequest, request: Request, caller: RouteAuthFlat
) -> Response:
    """What POST /route runs: one flat auth dependency (see router/api/lean_route.py)."""
    return await _route_one(body.attribute_to(caller.key_name), request)


def _add_routes(app: FastAPI) -> None:
    # What OpenAPI documents for POST /route (no docstring: it would become its description);
    # requests are served by `_serve_route`.
    async def route(body: RouteRequest, request: Request, caller: RouteAuth) -> Response:
        return await _route_one(body.attribute_to(caller.key_name), request)

    app.router.add_api_route(
        "/route", route, methods=["POST"], response_model=RouteDecision,
        response_model_exclude_none=True, responses=ROUTE_ERRORS,
        route_class_override=lean_route(_serve_route),
    )

    @app.post("/route/batch", response_model=BatchRouteResponse, response_model_exclude_none=True,
              responses=ROUTE_ERRORS)
    async def route_batch(
        body: BatchRouteRequest, service: ServiceDep, metrics: MetricsDep, caller: RouteAuth
    ) -> BatchRouteResponse:
        limit = service.settings.limits.max_batch
        if len(body.requests) > limit:
            raise RequestLimitError(
                "requests", f"{len(body.requests)} requests exceed the limit of {limit}", limit
            )
        started = time.perf_counter()
        for item in body.requests:
            item.attribute_to(caller.key_name)
        decisions = await run_in_threadpool(service.route, body.requests)
        _count(metrics, decisions, started)
        return BatchRouteResponse(decisions=decisions)

    @app.get("/tiers", response_model=list[TierInfo], responses=error_responses(401, 403, 408, 429))
    async def tiers(service: ServiceDep, _: RouteAuth) -> list[TierInfo]:
        tiers = service.settings.tiers
        return [TierInfo(**t.model_dump(exclude={"training_models"})) for t in tiers]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz(service: ServiceDep) -> JSONResponse:
        body = {"ready": service.ready, "router_version": service.version}
        if not service.ready:
            body["reason"] = service.load_error or "model not loaded"
        return JSONResponse(body, status_code=200 if service.ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_endpoint(request: Request, metrics: MetricsDep) -> Response:
        request.app.state.holder.refresh_gauges()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload", responses=error_responses(401, 403, 409, 429))
    async def reload(request: Request, _: AdminAuth) -> dict[str, Any]:
        service = await run_in_threadpool(request.app.state.holder.reload)
        return {"status": "reloaded", "router_version": service.version, "ready": service.ready}


ROUTE_ERRORS = error_responses(400, 401, 403, 408, 422, 429, 503)


def _count(metrics: Metrics, decisions: list[RouteDecision], started: float) -> None:
    elapsed = (time.perf_counter() - started) / max(len(decisions), 1)
    for decision in decisions:
        metrics.decisions.labels(decision.tier, decision.reason).inc()
        metrics.latency.observe(elapsed)
        if decision.reason == "degraded":
            metrics.degraded.inc()


# Errors answered as {"error", "detail"}: type -> (HTTP status, error text, metrics kind).
# RouterError is the catch-all for the tree; more specific handlers win (Starlette uses the MRO).
PLAIN_ERRORS: dict[type[RouterError], tuple[int, str, str]] = {
    UnknownDecision: (404, "unknown decision", "unknown_decision"),
    FeedbackConflict: (409, "feedback conflict", "feedback_conflict"),
    StoreError: (503, "trace store unavailable", "store"),
    ServiceUnavailable: (503, "model unavailable", "unavailable"),
    ConfigError: (409, "reload refused", "reload_refused"),
    RouterError: (409, "", "router"),
}


def _plain_handler(metrics: Metrics, status: int, error: str, kind: str) -> Any:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels(kind).inc()
        return JSONResponse({"error": error or type(exc).__name__, "detail": str(exc)}, status)

    return handler


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
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
        detail = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
             "message": err["msg"], **({"limit": err["ctx"].get("limit_value") or
                                        err["ctx"].get("le") or err["ctx"].get("ge")}
                                       if err.get("ctx") and any(k in err["ctx"] for k in
                                       ("limit_value", "le", "ge")) else {})}
            for err in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "detail": detail}, status_code=422)

    @app.exception_handler(RequestLimitError)
    async def over_limit(_: Request, exc: RequestLimitError) -> JSONResponse:
        metrics.errors.labels("limit").inc()
        body = {"field": exc.field, "message": str(exc), "limit": exc.limit}
        return JSONResponse({"error": "invalid request", "detail": [body]}, exc.status)

    @app.exception_handler(AuthError)
    async def refused(_: Request, exc: AuthError) -> JSONResponse:
        metrics.errors.labels("unauthorized" if exc.status == 401 else "forbidden").inc()
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        kind = "unauthorized" if exc.status == 401 else "forbidden"
        return JSONResponse({"error": kind, "detail": str(exc)}, exc.status, headers=headers)

    @app.exception_handler(RateLimited)
    async def too_many(_: Request, exc: RateLimited) -> JSONResponse:
        metrics.errors.labels("rate_limited").inc()
        return JSONResponse({"error": "rate limited", "detail": str(exc)}, 429,
                            headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(BudgetExhausted)
    async def budget_spent(_: Request, exc: BudgetExhausted) -> JSONResponse:
        metrics.errors.labels("budget").inc()
        body = {"error": "budget exhausted", "detail": str(exc), "budget": exc.name,
                "limit_usd": exc.limit_usd, "spent_usd": exc.spent_usd,
                "resets_at": exc.resets_at}
        return JSONResponse(body, 402)

    for error_type, (status, error, kind) in PLAIN_ERRORS.items():
        app.add_exception_handler(error_type, _plain_handler(metrics, status, error, kind))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        metrics.errors.labels("internal").inc()
        return JSONResponse({"error": "internal error", "detail": type(exc).__name__}, 500)


class BodySizeLimit:
    """Refuse bodies over limits.max_body_bytes (422 naming the limit, like every other limit)
    before parsing them."""

    def __init__(self, app: ASGIApp, holder: ServiceHolder):
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.holder.settings.limits.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        chunks, seen = [], 0
        while True:  # read it all (bounded by the limit) so nothing downstream can overrun it
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                await _too_large(send, limit)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    body = JSONResponse(
        {"error": "invalid request", "detail": [{
            "field": "body", "message": f"request body exceeds the limit of {limit} bytes",
            "limit": limit}]},
        status_code=422,
    )
    await send({"type": "http.response.start", "status": 422, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})


def _install_sighup(holder: ServiceHolder) -> None:
    """SIGHUP reloads config and model, like POST /admin/reload (main thread only)."""
    try:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGHUP, lambda: loop.run_in_executor(None, holder.reload_quietly)
        )
    except (NotImplementedError, RuntimeError, ValueError):
        log.info("SIGHUP reload not available in this process")
