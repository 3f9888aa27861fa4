"""POST /verify: accept a cheap answer on its checks and confidence, or escalate it."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from router.api.deps import HolderDep, RouteCaller, ServiceDep
from router.errors import ServiceNotStarted
from router.schemas import ErrorBody, VerifyAnswer, VerifyRequest, error_responses

router = APIRouter()


@router.post("/verify", response_model=VerifyAnswer,
             responses={
                 **error_responses(400, 401, 402, 408, 415, 422, 429, 503),
                 403: {"model": ErrorBody, "description": "The API key lacks the route scope, "
                       "or the decision was made by another key."},
                 404: {"model": ErrorBody, "description": "Unknown decision, or /verify is "
                       "off (verify.enabled: false, the default)."},
                 409: {"model": ErrorBody, "description": "The escalation was refused (see "
                       "POST /route's escalate_from)."},
             })
async def verify(body: VerifyRequest, holder: HolderDep, service: ServiceDep,
                 caller: RouteCaller) -> VerifyAnswer:
    """`accept` the answer of a routed call, or `escalate` it: a failed check escalates; without
    checks, the answer's mean log-probability must clear its category's learned threshold.
    Off by default (verify.enabled): learned and tested on synthetic data only."""
    if holder.verify is None:
        raise ServiceNotStarted("the service has not started")
    return await run_in_threadpool(holder.verify.verify, body, service, caller)
