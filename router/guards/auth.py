"""API keys: who may call which endpoint, and how often.

Keys live in the config (or ``TIER_ROUTER_API_KEYS``) only as sha256 hashes, each with scopes
(``route``, ``feedback``, ``admin``) and an optional requests-per-minute token bucket. A request
shows its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. With no keys configured
the service is open, and so ``serve`` binds to loopback only (``check_bind``).

Endpoints attach a scope with the ``Annotated`` aliases of ``router.api.deps``. Keys are read
from the *current* service's settings on every request, so a reload adds or revokes keys at
once; bucket levels are the ``KeyRing``'s state and survive reloads.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import get_args

from router.config import ApiKeyConfig, Scope, Settings
from router.errors import AuthError, ConfigError, Forbidden, RateLimited

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
    """Checks a presented key against the configured keys and charges its rate bucket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def authenticate(
        self, keys: Sequence[ApiKeyConfig], key: str | None, scope: Scope
    ) -> Principal:
        """The caller, or AuthError (401) / Forbidden (403) / RateLimited (429) saying why not."""
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
            raise Forbidden(
                f"API key '{entry.name}' lacks the '{scope}' scope (it has: "
                f"{', '.join(entry.scopes)})"
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


def presented_key(
    keys: Sequence[ApiKeyConfig], authorization: str | None, bearer: str | None,
    api_key: str | None,
) -> str | None:
    """The one key a request shows (`bearer`: the credentials of a well-formed Bearer header)."""
    if keys:
        if bearer is None and api_key is None and authorization is not None:
            raise AuthError("the Authorization header must read 'Bearer <key>'")
        if bearer is not None and api_key is not None and api_key != bearer:
            raise AuthError("Authorization and X-API-Key carry different keys; send one")
    return bearer if bearer is not None else api_key
