"""Micro-batching for POST /route: concurrent calls share one encoder call, off the event loop.

Why: the encoder's cost per prompt falls steeply with batch size (int8 ONNX: ~2 ms alone,
~1.4 ms each at batch 32), and Python cannot run two encoder calls on two cores at once any
faster than one batched call. So all /route calls go through one worker thread: while it runs
a batch, the event loop keeps accepting and parsing requests, and the ones that arrive meanwhile
form the next batch, which starts as soon as the previous one ends (its answers are written
while the encoder works on the next). Under load batches therefore fill without any timer. Only
when the queue ran empty does a short wait (``embedder.batch_wait_ms``) gather stragglers, up
to as many callers as the last batch held: it is skipped while traffic is sequential (the last
batch held a single request), and it ends as soon as the last round's callers are back, since
waiting for callers that do not exist would only leave the encoder idle.

Errors stay with their caller: each request's limits and budget are checked on their own first,
and if the batched call still fails, every request of it is routed alone, so one bad request
fails only itself. The service is looked up once per batch (its settings with it), so a reload
takes effect at the next batch. ``stop`` refuses new calls and routes every queued one before
the worker ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from router.errors import RouterError, ServiceNotStarted, ServiceUnavailable
from router.guards.gate import Admission
from router.schemas import RouteDecision, RouteRequest
from router.serving.service import RouterService

log = logging.getLogger(__name__)

Outcome = RouteDecision | Exception


@dataclass
class _Call:
    request: RouteRequest
    future: asyncio.Future[RouteDecision]


class ServiceSource(Protocol):
    """Whatever holds the current service (the holder): read once per batch."""

    current: RouterService | None


class MicroBatcher:
    """Gathers single /route calls into batches for `RouterService.route` in one worker thread."""

    def __init__(self, source: ServiceSource):
        self._source = source
        self._pending: deque[_Call] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._accepting = False
        self.batches = 0
        self.requests = 0

    @property
    def running(self) -> bool:
        return self._accepting

    def start(self) -> None:
        """Start the collector on the running event loop (call from the app's lifespan)."""
        if self._task is not None:
            return
        self._arrived = asyncio.Event()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="route-batcher")
        self._accepting = True
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="route-batcher")

    async def route(self, request: RouteRequest) -> RouteDecision:
        """This request's decision, or its own exception, once its batch has run."""
        if not self._accepting or self._arrived is None or self._task is None or (
                self._task.done()):
            raise ServiceUnavailable("the router is not accepting requests (starting or stopping)")
        future: asyncio.Future[RouteDecision] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(request, future))
        self._arrived.set()
        return await future

    async def stop(self) -> None:
        """Refuse new calls, answer every queued one, then end the worker thread."""
        if self._task is None:
            return
        self._accepting = False
        assert self._arrived is not None and self._worker is not None
        self._arrived.set()
        await self._task
        self._worker.shutdown(wait=True)
        self._task = None

    async def _collect(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        last = 1  # size of the previous batch: how many callers are likely to come back
        slept = True  # the queue ran empty: the encoder is idle, a short wait may fill a batch
        while self._pending or self._accepting:
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
                slept = True
                continue
            batch: list[_Call] = []
            try:
                service = self._source.current
                if service is None:
                    raise ServiceNotStarted("the service has not started")
                config = service.settings.embedder
                if slept and last > 1 and self._accepting:
                    await self._gather(min(config.batch_size, last), config.batch_wait_ms / 1000)
                slept = False
                batch = [self._pending.popleft()
                         for _ in range(min(config.batch_size, len(self._pending)))]
                last = len(batch)
                live = [call for call in batch if not call.future.done()]  # gave up: skipped
                outcomes = await loop.run_in_executor(
                    self._worker, _run, service, [call.request for call in live]) if live else []
            except Exception as exc:  # noqa: BLE001 - the collector must outlive any failure
                log.exception("route batcher: a batch failed outside the service")
                live = batch or [self._pending.popleft() for _ in range(len(self._pending))]
                outcomes = [ServiceUnavailable(f"routing failed: {type(exc).__name__}")] * len(live)
            self.batches += 1
            self.requests += len(live)
            for call, outcome in zip(live, outcomes, strict=True):
                if call.future.done():
                    continue
                if isinstance(outcome, Exception):
                    call.future.set_exception(outcome)
                else:
                    call.future.set_result(outcome)

    async def _gather(self, size: int, wait_s: float) -> None:
        """Wait up to `wait_s` for `size` calls to be pending (concurrent traffic only)."""
        assert self._arrived is not None
        if wait_s <= 0 or len(self._pending) >= size:
            return
        deadline = asyncio.get_running_loop().time() + wait_s
        while len(self._pending) < size and self._accepting:
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                return


def _run(service: RouterService, requests: Sequence[RouteRequest]) -> list[Outcome]:
    """Worker thread: per-request admission, one batched route, per-request retry on failure."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    ok: list[int] = []
    admissions: list[Admission] = []
    for i, request in enumerate(requests):
        try:
            admissions.append(service.admit(request))
            ok.append(i)
        except RouterError as exc:
            outcomes[i] = exc
    if ok:
        routed = _route_each(service, [requests[i] for i in ok], admissions)
        for i, outcome in zip(ok, routed, strict=True):
            outcomes[i] = outcome
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


def _route_each(service: RouterService, requests: list[RouteRequest],
                admissions: list[Admission]) -> list[Outcome]:
    """One batched call; if it fails, each request alone so the failure lands on its owner
    (and only its charge is given back)."""
    try:
        return list(service.route_admitted(requests, admissions))
    except Exception as exc:  # noqa: BLE001 - handed back to the caller(s), never swallowed
        if len(requests) == 1:
            service.release(admissions)  # no decision: its token charge is given back
            return [exc]
        log.warning("a batch of %d failed (%s); routing its requests one by one",
                    len(requests), type(exc).__name__)
    outcomes: list[Outcome] = []
    for request, admission in zip(requests, admissions, strict=True):
        try:
            outcomes.append(service.route_admitted([request], [admission])[0])
        except Exception as exc:  # noqa: BLE001 - this request's own error, for its caller
            service.release([admission])
            outcomes.append(exc)
    return outcomes
