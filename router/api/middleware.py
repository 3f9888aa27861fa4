"""Request-wide limits as ASGI middleware: body size (422) and time (408), each naming its limit.

``limits.max_body_bytes``: a body over it is refused before it is parsed, so no handler can be
made to hold more.

``limits.max_json_depth``: a body nested deeper (arrays and objects) is refused with the 400 a
body that cannot be parsed gets, on every endpoint, before any parser recurses into it.

``limits.request_timeout_s``: a request that takes longer gets a 408 that names the limit.

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
import re
from collections.abc import Callable
from typing import Protocol

import numpy as np
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.config import LimitsConfig, Settings

log = logging.getLogger(__name__)

EXEMPT_PREFIXES = ("/admin/",)


class SettingsSource(Protocol):
    """Whatever holds the serving settings (the holder): read once per request."""

    @property
    def current(self) -> _Serving | None: ...  # the service serving now, when started

    @property
    def settings(self) -> Settings: ...  # before start: the settings it will start with


class _Serving(Protocol):
    @property
    def settings(self) -> Settings: ...


def settings_of(holder: SettingsSource) -> Settings:
    """The settings serving now (before start: the ones it will start with)."""
    service = holder.current
    return service.settings if service is not None else holder.settings


def limits_of(holder: SettingsSource) -> LimitsConfig:
    return settings_of(holder).limits


class RequestTimeLimit:
    """ASGI middleware: answer 408 when the app has not started its answer in time."""

    def __init__(
        self, app: ASGIApp, holder: SettingsSource,
        on_timeout: Callable[[], None] | None = None,
    ):
        self.app = app
        self.holder = holder
        self.on_timeout = on_timeout
        self._late: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        limit = limits_of(self.holder).request_timeout_s
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


class BodySizeLimit:
    """Refuse bodies over limits.max_body_bytes (422 naming the limit, like every other limit)
    before parsing them."""

    def __init__(self, app: ASGIApp, holder: SettingsSource):
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limits_of(self.holder).max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        chunks, seen = [], 0
        while True:  # read it all (bounded by the limit) so nothing downstream can overrun it
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                await _too_large(send, limit)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False
        depth_limit = limits_of(self.holder).max_json_depth
        if len(body) > INLINE_DEPTH_BYTES:  # a long scan: off the event loop
            deep = await run_in_threadpool(too_deep, body, depth_limit)
        else:
            deep = too_deep(body, depth_limit)
        if deep:
            await _too_deep(send, depth_limit)
            return

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


INLINE_DEPTH_BYTES = 65_536  # bodies up to this size are checked on the event loop (< 1 ms)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # a JSON string, escapes included
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int32)  # what each bracket does to the depth
_STEP[list(b"[{")], _STEP[list(b"]}")] = 1, -1


def too_deep(body: bytes, limit: int) -> bool:
    """Does `body` nest arrays and objects deeper than `limit`? Brackets inside strings do not
    count; cheap for the usual body (fewer opening brackets than the limit in all)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return False
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)]
    return int(np.cumsum(steps).max()) > limit


async def _too_deep(send: Send, limit: int) -> None:
    body = JSONResponse(
        {"error": "bad request", "detail": [{
            "field": "body", "message": f"the JSON body nests arrays and objects deeper than "
                                        f"the limit of {limit} levels (limits.max_json_depth)",
            "limit": limit}]},
        status_code=400,
    )
    await send({"type": "http.response.start", "status": 400, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})


async def _too_large(send: Send, limit: int) -> None:
    body = JSONResponse(
        {"error": "invalid request", "detail": [{
            "field": "body", "message": f"request body exceeds the limit of {limit} bytes",
            "limit": limit}]},
        status_code=422,
    )
    await send({"type": "http.response.start", "status": 422, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})
