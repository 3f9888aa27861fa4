"""POST /feedback and GET /spend: outcomes into the trace store, spend out of it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.api.deps import AdminCaller, FeedbackCaller, FeedbackDep, LoopDep, ServiceDep
from router.schemas import (
    OBSERVED,
    ErrorBody,
    Feedback,
    FeedbackReceipt,
    SpendKey,
    SpendReport,
    TraceRecord,
    error_responses,
    with_suggestions,
)
from router.traces.estimate import MAX_ESTIMATE_ROWS, EstimateLimits
from router.traces.feedback import feedback_model

router = APIRouter()

FEEDBACK_EXAMPLES = {
    "routed": {"summary": "Outcome of a routed call", "value": {
        "decision_id": "5f0c…", "success": True, "model_used": "gpt-4.1-nano",
        "cost_usd": 0.00021, "tokens_in": 812, "tokens_out": 140, "latency_ms": 930}},
    "trace": {"summary": "A TRACES.md trace that bypassed the router", "value": {
        "prompt": "What is 2 + 2?", "model": "gpt-4.1", "quality": 1.0, "role": "solver"}},
}


def _body_schema() -> dict[str, Any]:
    """The request body as OpenAPI sees it: Feedback with at least one observed fact, or a
    TRACES.md trace with a label.

    The endpoint validates by hand (to pick the model by the body's shape, so errors name the
    fields of the right one); nested models are referenced from the app's own components.
    """
    ref = "#/components/schemas/{model}"
    variants = []
    for model in (Feedback, TraceRecord):
        schema = model.model_json_schema(ref_template=ref)
        defs = schema.pop("$defs", {})
        variants.append(_inline(schema, {ref.format(model=n): defs[n] for n in BODY_ONLY
                                         if n in defs}))
    variants[0]["anyOf"] = [_present(name, _KINDS[name]) for name in OBSERVED]
    variants[1]["anyOf"] = [_present("quality", "number"), _present("success", "boolean")]
    variants[1]["oneOf"] = [_present("messages", "array"), _present("prompt", "string")]
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": variants}, "examples": FEEDBACK_EXAMPLES}}}}


# Models nested only in this hand-written body: no app component exists for them to reference.
BODY_ONLY = ("Attempt",)


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with each reference to one of `defs` replaced by its definition."""
    if isinstance(schema, dict):
        if schema.get("$ref") in defs:
            return defs[schema["$ref"]]
        return {k: _inline(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


_KINDS = {"quality": "number", "success": "boolean", "cost_usd": "number", "tokens_in": "integer",
          "tokens_out": "integer", "latency_ms": "number", "error": "string"}


def _present(field: str, kind: str) -> dict[str, Any]:
    """JSON Schema for "`field` is given and not null" (null means absent to the API)."""
    return {"required": [field], "properties": {field: {"type": kind}}}


@router.post(
    "/feedback", response_model=FeedbackReceipt, status_code=201, openapi_extra=_body_schema(),
    responses={
        **error_responses(400, 401, 408, 415, 422, 429),
        403: {"model": ErrorBody, "description": "The API key lacks the feedback scope, or "
              "the decision was made by another key (only it or an admin key may post)."},
        200: {"model": FeedbackReceipt, "description": "Already stored (idempotent)."},
        404: {"model": ErrorBody, "description": "Unknown decision_id."},
        409: {"model": ErrorBody, "description": "A different outcome is already stored."},
        503: {"model": ErrorBody, "description": "The trace store is disabled or down."},
    },
)
async def feedback(
    request: Request, response: Response, reports: FeedbackDep, service: ServiceDep,
    caller: FeedbackCaller,
) -> FeedbackReceipt:
    """Store how a call went; durable (committed) before the answer. Only the key that made
    the decision (or an admin key) may post its outcome: 403 otherwise."""
    body = await _json_body(request)
    try:
        model = feedback_model(body)
        item = model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(with_suggestions(exc.errors(), model)) from None
    receipt = await run_in_threadpool(reports.feedback, item, service, caller)
    response.status_code = 201 if receipt.status == "stored" else 200
    return receipt


async def _json_body(request: Request) -> Any:
    """The parsed JSON body; a body that is not JSON is refused like any other bad input."""
    try:
        return await request.json()
    except RecursionError:  # deeper than the body check lets through: only a config can
        raise StarletteHTTPException(400, "There was an error parsing the body") from None
    except ValueError:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",),
                                       "msg": "the body is not valid JSON", "input": None}]
                                     ) from None


@router.get("/spend", response_model=SpendReport, responses={
    **error_responses(401, 403, 408, 422, 429),
    503: {"model": ErrorBody, "description": "The trace store is disabled or down."}})
async def spend(
    loop: LoopDep,
    _: AdminCaller,
    by: Annotated[SpendKey, Query(description="Attribution key to group by.")] = "role",
    since: Annotated[float | None, Query(ge=0, description="Epoch seconds.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many rows.")] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Skip this many rows (the "
                                 "previous page's next_offset).")] = 0,
    estimate: Annotated[bool, Query(description="Add the learned map's off-policy estimate "
                                    "against always-strongest (`estimate`).")] = True,
    estimate_rows: Annotated[int, Query(ge=100, le=MAX_ESTIMATE_ROWS, description="The "
                                        "estimate reads at most this many labelled decisions "
                                        "since `since`, the newest first.")] = 10_000,
    estimate_categories: Annotated[int, Query(ge=0, le=100, description="Per-category figures "
                                              "for this many categories, most calls first.")
                                   ] = 10,
    estimate_resamples: Annotated[int, Query(ge=0, le=2000, description="Bootstrap resamples "
                                             "of the estimate's intervals (0: none; resamples "
                                             "x estimate_rows at most 20,000,000).")] = 200,
) -> SpendReport:
    """Cost per role, run, step, tier, model, user or API key; estimates where no cost came
    back. One page at a time, the costliest first (`next_offset` says where the next starts).
    With `estimate` (default), what following the learned map buys against always-strongest,
    estimated off-policy from the labelled decisions of the window (bounded by
    `estimate_rows`)."""
    limits = (EstimateLimits(categories=estimate_categories, max_rows=estimate_rows,
                             resamples=estimate_resamples) if estimate else None)  # 422: bound
    return await run_in_threadpool(loop.spend, by, since, limit, offset, limits)
