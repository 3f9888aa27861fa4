"""What operators call: GET /tiers, /healthz, /readyz, /metrics, POST /admin/reload, and the
online learning state: GET /admin/learning, POST /admin/learning/reset, the learned map
GET /map and POST /admin/map/reset."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from router.api.deps import (
    AdminCaller,
    EmptyBody,
    HolderDep,
    LoopDep,
    MetricsCaller,
    MetricsDep,
    RouteCaller,
    ServiceDep,
)
from router.decision.map_view import MapFilter
from router.schemas import EMPTY_JSON_BODY, MapPage, MapReset, Readiness, TierInfo, error_responses

router = APIRouter()


@router.get("/tiers", response_model=list[TierInfo], responses=error_responses(401, 403, 408, 429))
async def tiers(service: ServiceDep, loop: LoopDep, _: RouteCaller) -> list[TierInfo]:
    """The tiers, cheapest first, with each model's health (circuit, error rate, latency)."""
    health = await run_in_threadpool(loop.health.report, service.settings)  # may ask Redis
    out = []
    for t in service.settings.tiers:
        models = [health[m] for m in t.models]
        out.append(TierInfo(**t.model_dump(exclude={"training_models"}), health=models,
                            available=any(m.state != "open" for m in models)))
    return out


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(service: ServiceDep, holder: HolderDep) -> JSONResponse:
    body: dict[str, Any] = {"ready": service.ready, "router_version": service.version}
    if not service.ready:
        body["reason"] = service.load_error or "model not loaded"
    if holder.shared is not None:  # Redis up, or down and what happens meanwhile
        body["shared_state"] = await run_in_threadpool(holder.shared.describe)
    return JSONResponse(body, status_code=200 if service.ready else 503)


@router.get("/metrics", response_class=PlainTextResponse,
            responses=error_responses(401, 403, 429))
async def metrics_endpoint(holder: HolderDep, metrics: MetricsDep, _: MetricsCaller) -> Response:
    """Prometheus text; a key with the 'metrics' scope unless auth.public_metrics."""
    holder.refresh_gauges()
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


@router.post("/admin/reload", responses=error_responses(400, 401, 403, 409, 415, 422, 429),
             openapi_extra=EMPTY_JSON_BODY)
async def reload(holder: HolderDep, _: AdminCaller, __: EmptyBody) -> dict[str, Any]:
    service = await run_in_threadpool(holder.reload)
    return {"status": "reloaded", "router_version": service.version, "ready": service.ready}


@router.get("/admin/learning", responses=error_responses(401, 403, 429))
async def learning(loop: LoopDep, _: AdminCaller) -> dict[str, Any]:
    """The online learning state: revision, size, per tier outcomes, realised vs predicted."""
    return loop.learning_report()


@router.post("/admin/learning/reset", responses=error_responses(400, 401, 403, 415, 422, 429),
             openapi_extra=EMPTY_JSON_BODY)
async def learning_reset(loop: LoopDep, _: AdminCaller, __: EmptyBody) -> dict[str, Any]:
    """Forget what the deployment's outcomes taught (they stay in the store); decisions go back
    to the model's own scores. Other replicas follow at their next refresh."""
    return await run_in_threadpool(loop.reset_learning)


Signal = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get("/map", response_model=MapPage, responses=error_responses(401, 403, 422, 429))
async def learned_map(
    loop: LoopDep, _: AdminCaller,
    key: Annotated[str | None, Query(min_length=1, max_length=64,
                                     description="Only this API key's categories ('-': calls "
                                                 "without a key, '*': shared).")] = None,
    role: Signal = None, task: Signal = None,
    tier: Annotated[str | None, Query(min_length=1, max_length=64,
                                      description="Only categories choosing this tier.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many categories.")] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Skip this many (the previous "
                                 "page's next_offset).")] = 0,
) -> MapPage:
    """The learned map, one category a row in a stable order (key, then path): per tier its
    calls, labelled outcomes and quality relative to the strongest with its interval; the tier
    chosen at the configured quality_target and why (evidence, prior, pin, cold); the share of
    calls explored; the saving against the strongest tier."""
    where = MapFilter("" if key == "-" else key, role, task, tier)
    return await run_in_threadpool(loop.map_page, where, limit, offset)


@router.post("/admin/map/reset", responses=error_responses(400, 401, 403, 415, 422, 429))
async def map_reset(loop: LoopDep, _: AdminCaller, body: MapReset) -> dict[str, Any]:
    """Forget one category (and the finer ones under it): its calls go back to its coarser
    category's evidence, then learn again. The store records when; the outcomes stay. Other
    replicas follow at their next rebuild."""
    return await run_in_threadpool(loop.forget_category, body.category)
