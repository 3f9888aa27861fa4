"""GET /runs/{run_id} and GET /runs: an agent run's ledger, and the live runs, from the store.

A run is visible to the key that made its calls and to admin keys (every key's calls); any
other key gets 404, as for a run that does not exist, so a key learns nothing of others' runs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from router.api.deps import LoopDep, RunCaller
from router.guards.auth import Principal
from router.schemas import ErrorBody, RunLedger, RunList, error_responses

router = APIRouter()

RUN_ERRORS = {
    **error_responses(401, 403, 408, 422, 429),
    503: {"model": ErrorBody, "description": "The trace store is disabled or down."},
}


def owner_of(caller: Principal) -> str | None:
    """Whose calls the caller may read: its own key's, or (admin, open service) everyone's."""
    return None if caller.anonymous or "admin" in caller.scopes else caller.name


@router.get("/runs/{run_id}", response_model=RunLedger, responses={
    **RUN_ERRORS,
    404: {"model": ErrorBody, "description": "No live run with this id for this key."}})
async def run_ledger(
    loop: LoopDep, caller: RunCaller,
    run_id: Annotated[str, Path(min_length=1, max_length=256)],
) -> RunLedger:
    """Every call of the run in order (step, role, task, tier, model, tokens, estimated and
    reported cost), its total and its most expensive step."""
    return await run_in_threadpool(loop.runs.ledger, run_id, owner_of(caller))


@router.get("/runs", response_model=RunList, responses=RUN_ERRORS)
async def live_runs(
    loop: LoopDep, caller: RunCaller,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many runs.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Skip this many runs (the "
                                 "previous page's next_offset).")] = 0,
) -> RunList:
    """The live runs (a call within runs.expire_after_s) the caller may see, latest first,
    one page at a time (`next_offset` says where the next one starts)."""
    return await run_in_threadpool(loop.runs.recent, owner_of(caller), limit, offset)
