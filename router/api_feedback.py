"""POST /feedback and GET /spend: outcomes into the trace store, spend out of it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from router.errors import StoreError
from router.feedback import feedback_model
from router.loop import ClosedLoop
from router.schemas import ErrorBody, FeedbackReceipt, SpendReport

router = APIRouter()

SpendKey = Literal["role", "run_id", "step", "tier", "model", "user"]

FEEDBACK_EXAMPLES = {
    "routed": {"summary": "Outcome of a routed call", "value": {
        "decision_id": "5f0c…", "success": True, "model_used": "gpt-4.1-nano",
        "cost_usd": 0.00021, "tokens_in": 812, "tokens_out": 140, "latency_ms": 930}},
    "trace": {"summary": "A TRACES.md trace that bypassed the router", "value": {
        "prompt": "What is 2 + 2?", "model": "gpt-4.1", "quality": 1.0, "role": "solver"}},
}


def get_loop(request: Request) -> ClosedLoop:
    loop = request.app.state.holder.loop
    if loop is None:
        raise StoreError("the service has not started")
    return loop


@router.post(
    "/feedback", response_model=FeedbackReceipt, status_code=201,
    responses={200: {"model": FeedbackReceipt, "description": "Already stored (idempotent)."},
               404: {"model": ErrorBody, "description": "Unknown decision_id."},
               409: {"model": ErrorBody, "description": "A different outcome is stored."},
               422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def feedback(
    request: Request,
    response: Response,
    body: Annotated[dict[str, Any], Body(openapi_examples=FEEDBACK_EXAMPLES)],
) -> FeedbackReceipt:
    """Store how a call went; durable (committed) before the answer."""
    try:
        item = feedback_model(body).model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    loop = get_loop(request)
    settings = request.app.state.holder.settings
    receipt = await run_in_threadpool(loop.feedback, item, settings)
    response.status_code = 201 if receipt.status == "stored" else 200
    return receipt


@router.get("/spend", response_model=SpendReport, responses={503: {"model": ErrorBody}})
async def spend(
    request: Request,
    by: Annotated[SpendKey, Query(description="Attribution key to group by.")] = "role",
    since: Annotated[float | None, Query(ge=0, description="Epoch seconds.")] = None,
) -> SpendReport:
    """Cost per role, run, step, tier, model or user; estimates where no cost came back."""
    return await run_in_threadpool(get_loop(request).spend, by, since)
