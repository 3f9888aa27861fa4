"""The handlers' dependencies, as `Annotated` aliases: the one place that reads `app.state`.

`ServiceDep` is the service serving now (a reload swaps it between two requests, never during
one), `LoopDep` the closed loop (store, spend), `HolderDep` the holder itself (reload, batcher),
`MetricsDep` the app's Prometheus metrics. `RouteCaller`, `FeedbackCaller` and `AdminCaller`
let a request through only with a key holding that scope; the two security schemes are
sub-dependencies so that OpenAPI documents them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from router.config import Scope
from router.errors import Forbidden, ServiceNotStarted
from router.guards.auth import KeyRing, Principal, presented_key
from router.serving.closed_loop import ClosedLoop
from router.serving.feedback import FeedbackService
from router.serving.holder import ServiceHolder
from router.serving.prometheus import Metrics
from router.serving.service import RouterService


async def get_holder(request: Request) -> ServiceHolder:
    return request.app.state.holder  # async: a sync dependency costs a thread hop


async def get_service(request: Request) -> RouterService:
    service = request.app.state.holder.current
    if service is None:
        raise ServiceNotStarted("the service has not started")
    return service


async def get_loop(request: Request) -> ClosedLoop:
    loop = request.app.state.holder.loop
    if loop is None:
        raise ServiceNotStarted("the service has not started")
    return loop


async def get_feedback(request: Request) -> FeedbackService:
    feedback = request.app.state.holder.feedback
    if feedback is None:
        raise ServiceNotStarted("the service has not started")
    return feedback


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


HolderDep = Annotated[ServiceHolder, Depends(get_holder)]
ServiceDep = Annotated[RouterService, Depends(get_service)]
LoopDep = Annotated[ClosedLoop, Depends(get_loop)]
FeedbackDep = Annotated[FeedbackService, Depends(get_feedback)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key itself.")


def require(scope: Scope, charge: bool = True) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only with a key holding ``scope``, counting
    it against the key's ``rate_per_minute`` (`charge`; /route counts each call at admission,
    with its other limits, in one step)."""

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        holder: ServiceHolder = request.app.state.holder
        settings = holder.current.settings if holder.current is not None else holder.settings
        keys = settings.auth.keys
        keyring: KeyRing = holder.keyring
        key = presented_key(keys, request.headers.get("authorization"),
                            bearer.credentials if bearer is not None else None, api_key)
        if keyring.remote and charge:  # a Redis round trip: off the event loop
            principal = await run_in_threadpool(keyring.authenticate, keys, key, scope)
        else:
            principal = keyring.authenticate(keys, key, scope, charge)
        request.state.principal = principal
        return principal

    check.__name__ = f"require_{scope}" if charge else f"require_{scope}_uncharged"
    return check


async def metrics_reader(request: Request) -> Principal | None:
    """/metrics: anyone while ``auth.public_metrics`` (the scrape convention on a private
    port), else a key with the ``metrics`` scope. No security scheme is declared: by default
    the endpoint is open, and OpenAPI says so."""
    holder: ServiceHolder = request.app.state.holder
    settings = holder.current.settings if holder.current is not None else holder.settings
    if settings.auth.public_metrics or not settings.auth.keys:
        return None
    authorization = request.headers.get("authorization")
    scheme, _, credentials = (authorization or "").partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
    key = presented_key(settings.auth.keys, authorization, bearer,
                        request.headers.get("x-api-key"))
    return await run_in_threadpool(holder.keyring.authenticate, settings.auth.keys, key,
                                   "metrics")


RouteCaller = Annotated[Principal, Depends(require("route"))]
# /route and /route/batch: each call is counted against rate_per_minute at its admission
AdmittedCaller = Annotated[Principal, Depends(require("route", charge=False))]
FeedbackCaller = Annotated[Principal, Depends(require("feedback"))]
AdminCaller = Annotated[Principal, Depends(require("admin"))]
MetricsCaller = Annotated[Principal | None, Depends(metrics_reader)]


def require_either(first: Scope, second: Scope) -> Callable[..., Awaitable[Principal]]:
    """A key holding either scope (a run's ledger: the route key that made it, or admin)."""
    one, other = require(first), require(second)

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        try:
            return await one(request, bearer, api_key)
        except Forbidden:
            try:
                return await other(request, bearer, api_key)
            except Forbidden as exc:
                raise Forbidden(str(exc).replace(f"the '{second}' scope",
                                                 f"the '{first}' or '{second}' scope")) from None

    check.__name__ = f"require_{first}_or_{second}"
    return check


RunCaller = Annotated[Principal, Depends(require_either("route", "admin"))]


async def no_body(request: Request) -> None:
    """A bodyless POST (/admin/reload, /admin/learning/reset): no body, or ``{}``; anything else
    is refused like any other bad input (422), so nothing a client sends passes unread."""
    raw = await request.body()
    if not raw.strip():
        return
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if value != {}:
        raise RequestValidationError([{"type": "no_body", "loc": ("body",), "input": None,
                                       "msg": "this endpoint takes no body: send none or {}"}])


EmptyBody = Annotated[None, Depends(no_body)]
