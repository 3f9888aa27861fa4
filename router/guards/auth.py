"""API keys: who may call which endpoint, and how often.

Keys live in the config (or ``TIER_ROUTER_API_KEYS``) only as sha256 hashes, each with scopes
(``route``, ``feedback``, ``admin``) and an optional requests-per-minute token bucket. A request
shows its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. With no keys configured
the service is open, and so ``serve`` binds to loopback only (``check_bind``).

Endpoints attach a scope with the ``Annotated`` aliases at the bottom (``RouteAuth``,
``FeedbackAuth``, ``AdminAuth``). Keys are read from the *current* settings on every request, so
a reload adds or revokes keys at once; bucket levels live in the ``KeyRing`` and survive reloads.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, get_args

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from router.config import ApiKeyConfig, Scope, Settings
from router.errors import AuthError, ConfigError, RateLimited

log = logging.getLogger(__name__)

SCOPES: tuple[Scope, ...] = get_args(Scope)
KEY_PREFIX = "trk_"


def hash_key(key: str) -> str:
    """The hex sha256 that the config stores in place of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits), prefixed so it is recognisable in a secret scanner."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a configured key's name and scopes, or ``anonymous`` when open."""

    name: str
    scopes: frozenset[str]
    anonymous: bool = False

    @property
    def key_name(self) -> str | None:
        """The configured key's name, what per-key budgets and spend count; None when open."""
        return None if self.anonymous else self.name


ANONYMOUS = Principal("anonymous", frozenset(SCOPES), anonymous=True)


class TokenBucket:
    """Holds up to ``rate`` tokens and refills ``rate`` per minute; one request takes one."""

    def __init__(self, rate_per_minute: int, now: float):
        self.rate = rate_per_minute
        self.tokens = float(rate_per_minute)
        self.stamp = now

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one will be there."""
        per_second = self.rate / 60.0
        self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / per_second


class KeyRing:
    """Checks a presented key against the current settings and charges its bucket."""

    def __init__(
        self, settings: Callable[[], Settings], clock: Callable[[], float] = time.monotonic
    ):
        self._settings = settings
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return not self._settings().auth.keys

    def authenticate(self, key: str | None, scope: Scope) -> Principal:
        """The caller, or AuthError (401/403) / RateLimited (429) saying why not."""
        keys = self._settings().auth.keys
        if not keys:
            return ANONYMOUS
        if not key:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>' or "
                            "'X-API-Key: <key>'")
        digest = hash_key(key)
        entry = next((k for k in keys if secrets.compare_digest(k.sha256, digest)), None)
        if entry is None:
            log.warning("unknown API key refused", extra={"key_sha256_prefix": digest[:8]})
            raise AuthError("unknown API key")
        if scope not in entry.scopes:
            log.warning("API key lacks scope", extra={"key_name": entry.name, "scope": scope})
            raise AuthError(
                f"API key '{entry.name}' lacks the '{scope}' scope (it has: "
                f"{', '.join(entry.scopes)})", status=403,
            )
        self._charge(entry)
        return Principal(entry.name, frozenset(entry.scopes))

    def _charge(self, entry: ApiKeyConfig) -> None:
        if entry.rate_per_minute is None:
            return
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(entry.sha256)
            if bucket is None or bucket.rate != entry.rate_per_minute:
                bucket = self._buckets[entry.sha256] = TokenBucket(entry.rate_per_minute, now)
            wait = bucket.take(now)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise RateLimited(
                f"API key '{entry.name}' is over its limit of {entry.rate_per_minute} requests "
                f"per minute; retry in {retry} s", retry_after=retry,
            )


def check_bind(settings: Settings, host: str) -> None:
    """With no API keys the service is open, so it may only listen on loopback."""
    if settings.auth.keys or is_loopback(host):
        return
    raise ConfigError(
        f"no API keys are configured (auth.keys), so the service is open and refuses to bind "
        f"to {host!r}; bind to 127.0.0.1 or configure keys (tier-router hash-key)"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key itself.")


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only with a key holding ``scope``.

    The two security schemes are sub-dependencies so that OpenAPI documents them."""

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        return _admit(request, bearer, api_key, scope)

    check.__name__ = f"require_{scope}"
    return check


def require_flat(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """`require(scope)` as one dependency without sub-dependencies: the same headers read by
    the same scheme objects, the same checks and errors, for a route whose OpenAPI entry comes
    from `require` (see `router.api.lean_route`). Each dependency costs FastAPI tens of µs."""

    async def check(request: Request) -> Principal:
        return _admit(request, await _bearer(request), await _api_key(request), scope)

    check.__name__ = f"require_{scope}_flat"
    return check


def _admit(
    request: Request, bearer: HTTPAuthorizationCredentials | None, api_key: str | None,
    scope: Scope,
) -> Principal:
    keyring: KeyRing = request.app.state.keyring
    key = bearer.credentials if bearer is not None else api_key
    if not keyring.open:
        if key is None and "authorization" in request.headers:
            raise AuthError("the Authorization header must read 'Bearer <key>'")
        if bearer is not None and api_key is not None and api_key != bearer.credentials:
            raise AuthError("Authorization and X-API-Key carry different keys; send one")
    principal = keyring.authenticate(key, scope)
    request.state.principal = principal
    return principal


RouteAuth = Annotated[Principal, Depends(require("route"))]
RouteAuthFlat = Annotated[Principal, Depends(require_flat("route"))]
FeedbackAuth = Annotated[Principal, Depends(require("feedback"))]
AdminAuth = Annotated[Principal, Depends(require("admin"))]
