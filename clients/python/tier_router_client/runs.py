"""A run's final outcome, reported when the run ends: a cheaper step that makes a run fail saves
nothing, and only the run's outcome shows it (`POST /runs/{run_id}/outcome`, once per run).

    with reporting_run(router, "run-7") as run:
        completion(router, messages=[...], run_id=run.run_id)   # tier_router_client.litellm
        run.quality = grade(answer)                              # optional: a 0-1 grade

On a clean exit the run is reported as a success (or `run.success` / `run.quality` as set);
when an exception leaves the block, as a failure, and the exception goes on. The report is
bookkeeping: a failure to deliver it is logged, never raised over the agent's own result or
exception (`RouterClient.run_outcome` raises, for callers who want to know). Works with every
wrapper (`tier_router_client.litellm`, `tier_router_client.openai`) and the plain client; in
the LiteLLM proxy, agents post the outcome through the proxy's pass-through route
(examples/litellm_proxy/config.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.client import RouterClient
from tier_router_client.errors import TierRouterError

__all__ = ["RunScope", "areporting_run", "reporting_run"]
log = logging.getLogger("tier_router_client")


@dataclass
class RunScope:
    """The run being played: its id for every call, and its outcome once known (None: the
    block's own, success unless an exception left it)."""

    run_id: str
    success: bool | None = None
    quality: float | None = None
    receipt: dict[str, Any] | None = None  # the service's answer, once reported

    def outcome(self, failed: bool) -> dict[str, Any]:
        """What to report: the outcome set on the scope, else whether the block failed."""
        if failed:
            return {"success": False, "quality": self.quality}
        if self.success is None and self.quality is None:
            return {"success": True, "quality": None}
        return {"success": self.success, "quality": self.quality}


@contextmanager
def reporting_run(router: RouterClient, run_id: str) -> Iterator[RunScope]:
    """A run whose outcome `router` reports when the block ends (see the module)."""
    scope = RunScope(run_id)
    failed = True
    try:
        yield scope
        failed = False
    finally:
        try:
            scope.receipt = router.run_outcome(run_id, **scope.outcome(failed))
        except TierRouterError as exc:
            log.warning("outcome of run %s not reported: %s", run_id, exc)


@asynccontextmanager
async def areporting_run(router: AsyncRouterClient, run_id: str) -> AsyncIterator[RunScope]:
    """`reporting_run` for asyncio."""
    scope = RunScope(run_id)
    failed = True
    try:
        yield scope
        failed = False
    finally:
        try:
            scope.receipt = await router.run_outcome(run_id, **scope.outcome(failed))
        except TierRouterError as exc:
            log.warning("outcome of run %s not reported: %s", run_id, exc)
