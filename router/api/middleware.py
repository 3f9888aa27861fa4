"""limits.request_timeout_s: a request that takes longer gets a 408 that names the limit.

What happens to the work: Python cannot stop a thread, and the encoder runs in one, so the
request's handler is not cancelled. It runs on to the end in the background; whatever it then
answers is dropped (the client already has its 408), an error it raises is logged, and a
decision it completes still reaches the decision hooks (logs, trace store) like any other.
The limit therefore bounds how long a *client* waits, not how much work the server does;
under sustained overload the admission limits (body size, batch size, rate limits) are what
bound the work.

The limit covers reading the body too, so a client that trickles its body in is cut off.
``/admin/*`` is exempt: a reload may legitimately load a new encoder for longer than that.

408 (Request Timeout), a 4xx like every other configured limit: an agent's client treats it as
"retry, or go on with your own default model", which is what it should do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.config import Settings

log = logging.getLogger(__name__)

EXEMPT_PREFIXES = ("/admin/",)


class RequestTimeLimit:
    """ASGI middleware: answer 408 when the app has not started its answer in time."""

    def __init__(
        self, app: ASGIApp, settings: Callable[[], Settings],
        on_timeout: Callable[[], None] | None = None,
    ):
        self.app = app
        self.settings = settings
        self.on_timeout = on_timeout
        self._late: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        limit = self.settings().limits.request_timeout_s
        started = timed_out = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the client already has its 408
            started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=limit)
        if done or started:  # finished, or already answering: let it finish normally
            await task
            return
        timed_out = True
        self._late.add(task)
        task.add_done_callback(self._finished_late)
        if self.on_timeout is not None:
            self.on_timeout()
        log.warning("request timed out", extra={
            "path": scope["path"], "limit_s": limit, "event": "request_timeout"})
        await _timed_out(send, limit)

    def _finished_late(self, task: asyncio.Task[None]) -> None:
        self._late.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a timed-out request failed later", exc_info=task.exception())


async def _timed_out(send: Send, limit: float) -> None:
    body = JSONResponse(
        {"error": "request timed out", "detail": [{
            "field": "limits.request_timeout_s",
            "message": f"the request took longer than the limit of {limit} s; it was not "
                       "answered (retry, or route to your default model)",
            "limit": limit}]},
        status_code=408,
    )
    await send({"type": "http.response.start", "status": 408, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})
