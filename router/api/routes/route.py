"""POST /route and POST /route/batch: the decision for one call, or for several in order.

A single call goes through the micro-batcher (`serving.batcher`), which shares one encoder call
among the calls that arrive together; a batch is routed as one batch directly.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from router.api.deps import AdmittedCaller, HolderDep, MetricsDep, ServiceDep
from router.errors import RequestLimitError, ServiceNotStarted
from router.guards.auth import Principal
from router.schemas import (
    BatchRouteRequest,
    BatchRouteResponse,
    ErrorBody,
    RouteDecision,
    RouteRequest,
    error_responses,
)
from router.serving.holder import ServiceHolder
from router.serving.prometheus import MAX_ROLES, NO_ROLE, OTHER_ROLES, Metrics, label_text

router = APIRouter()

ROUTE_ERRORS = error_responses(400, 401, 402, 403, 408, 415, 422, 429, 503)
ESCALATION_ERRORS = {
    **ROUTE_ERRORS,
    403: {"model": ErrorBody, "description": "The API key lacks the route scope, or "
          "escalate_from names a decision another key made."},
    404: {"model": ErrorBody, "description": "escalate_from names an unknown decision."},
    409: {"model": ErrorBody, "description": "escalate_from was escalated from already "
          "(escalated_to names where it went), is on the strongest tier, or no stronger tier "
          "fits the call's ceiling, capabilities or max_cost_usd (limit names it)."},
}


@router.post("/route", response_model=RouteDecision, response_model_exclude_none=True,
             responses=ESCALATION_ERRORS)
async def route(
    body: RouteRequest, holder: HolderDep, metrics: MetricsDep, caller: AdmittedCaller
) -> Response:
    started = time.perf_counter()
    request = body.attribute_to(caller.key_name)
    if request.escalate_from is None:
        decision = await holder.batcher.route(request)
    else:  # rare, and it reads the store: off the batcher, in a thread of its own
        decision = await run_in_threadpool(_escalate, holder, request, caller)
    count(metrics, [request], [decision], started)
    # serialised straight from the model: FastAPI would validate the response model again
    return Response(decision.model_dump_json(exclude_none=True), media_type="application/json")


@router.post("/route/batch", response_model=BatchRouteResponse, response_model_exclude_none=True,
             responses=ROUTE_ERRORS)
async def route_batch(
    body: BatchRouteRequest, service: ServiceDep, metrics: MetricsDep, caller: AdmittedCaller
) -> BatchRouteResponse:
    limit = service.settings.limits.max_batch
    if len(body.requests) > limit:
        raise RequestLimitError(
            "requests", f"{len(body.requests)} requests exceed the limit of {limit}", limit
        )
    started = time.perf_counter()
    for index, item in enumerate(body.requests):
        item.attribute_to(caller.key_name)
        if item.escalate_from is not None:
            raise RequestLimitError(f"requests.{index}.escalate_from", "an escalation is one "
                                    "call: send it to POST /route on its own", None)
    decisions = await run_in_threadpool(service.route, body.requests)
    count(metrics, body.requests, decisions, started)
    return BatchRouteResponse(decisions=decisions)


def _escalate(holder: ServiceHolder, request: RouteRequest, caller: Principal
              ) -> RouteDecision:
    if holder.escalations is None:
        raise ServiceNotStarted("the service has not started")
    return holder.escalations.escalate(request, holder.service, caller)


def count(metrics: Metrics, requests: list[RouteRequest], decisions: list[RouteDecision],
          started: float) -> None:
    elapsed = (time.perf_counter() - started) / max(len(decisions), 1)
    for request, decision in zip(requests, decisions, strict=True):
        metrics.decisions.labels(decision.tier, decision.reason).inc()
        metrics.latency.observe(elapsed)
        if decision.reason == "degraded":
            metrics.degraded.inc()
        if not request.dry_run:  # evaluation traffic is not spend; budgets count the same
            metrics.spend.labels(_role_label(metrics, request.role)).inc(
                decision.spend_estimate_usd)


def _role_label(metrics: Metrics, role: str | None) -> str:
    """The caller's role (sanitised), while fewer than MAX_ROLES have a series (runs on the
    event loop)."""
    label = label_text(role) if role else NO_ROLE
    if label not in metrics.spend_roles:
        if len(metrics.spend_roles) >= MAX_ROLES:
            return OTHER_ROLES
        metrics.spend_roles.add(label)
    return label
