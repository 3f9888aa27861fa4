"""What every request must be before any handler reads it: a JSON POST, and, on an open service
(no API keys), not from another web site. One ASGI middleware, answers in the API's error shape.

Why: a web page can make a browser send a "simple" cross-site request (a POST with a
``text/plain`` body, no CORS preflight) to a router on loopback. So:

- every POST, bodyless ones included (``/admin/reload``), needs ``Content-Type:
  application/json``, which a page cannot send cross-site without a preflight (415 otherwise);
- on an open service a request whose ``Origin`` (or ``Sec-Fetch-Site``) says another site is
  refused (403), and the admin endpoints answer only to a loopback client unless
  ``auth.allow_open_admin`` is set (403);
- with keys configured, ``/docs``, ``/redoc`` and ``/openapi.json`` are served only while
  ``auth.public_docs`` is true (404 otherwise). ``/metrics`` is guarded by its own dependency
  (``router.api.deps.MetricsCaller``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from router.api.middleware import SettingsSource, settings_of
from router.guards.auth import is_loopback

DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
ADMIN_PREFIX = "/admin/"
JSON_TYPES = (b"application/json",)


class RequestChecks:
    """ASGI middleware: content type, cross-site origin, open admin, docs switch."""

    def __init__(self, app: ASGIApp, holder: SettingsSource):
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, error, field, message = refusal
        await _answer(send, status, error, field, message)

    def refusal(self, scope: Scope) -> tuple[int, str, str, str] | None:
        """(status, error, field, message) of the first check the request fails, or None."""
        headers = dict(scope.get("headers") or [])
        path: str = scope["path"]
        auth = settings_of(self.holder).auth
        if scope["method"] == "POST" and not is_json(headers.get(b"content-type")):
            return (415, "unsupported media type", "headers.content-type",
                    "a POST needs 'Content-Type: application/json' (bodyless ones too)")
        if auth.keys:
            if path in DOC_PATHS and not auth.public_docs:
                return 404, "not found", "path", "auth.public_docs is false: not served"
            return None
        site = cross_site(headers)
        if site is not None:
            return (403, "forbidden", "headers.origin",
                    f"the service is open (no API keys), so it refuses requests from another "
                    f"site ({site}); configure keys (auth.keys) to serve browsers elsewhere")
        if path.startswith(ADMIN_PREFIX) and not auth.allow_open_admin:
            client = scope.get("client")
            if client is None or not is_loopback(str(client[0])):
                return (403, "forbidden", "auth.allow_open_admin",
                        "the service is open (no API keys): its admin endpoints answer only "
                        "to a loopback client (set auth.allow_open_admin, or configure keys)")
        return None


def is_json(content_type: bytes | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.split(b";", 1)[0].strip().lower() in JSON_TYPES


def cross_site(headers: dict[bytes, bytes]) -> str | None:
    """The other site a browser says the request comes from, or None (same origin, or no
    browser: a client that sends no ``Origin``)."""
    fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
    if fetch_site == "cross-site":
        return "Sec-Fetch-Site: cross-site"
    origin = headers.get(b"origin")
    if origin is None:
        return None
    text = origin.decode("latin-1").strip()
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    parts = urlsplit(text)
    if text.lower() == "null" or not parts.netloc or parts.netloc.lower() != host:
        return f"Origin: {text[:200]}"
    return None


async def _answer(send: Send, status: int, error: str, field: str, message: str) -> None:
    body = JSONResponse({"error": error, "detail": [{"field": field, "message": message}]},
                        status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})
