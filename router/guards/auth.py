"""API keys: who may call which endpoint, and how often.

Keys live in the config (or ``TIER_ROUTER_API_KEYS``) only as sha256 hashes, each with scopes
(``route``, ``feedback``, ``admin``) and optional per-minute limits. A request
shows its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. With no keys configured
the service is open, and so ``serve`` binds to loopback only (``check_bind``).

Endpoints attach a scope with the ``Annotated`` aliases of ``router.api.deps``. Keys are read
from the *current* service's settings on every request, so a reload adds or revokes keys at
once; the limits' counters are the ``KeyRing``'s state and survive reloads.

``rate_per_minute`` means at most that many requests in any 60 seconds, counted in a sliding
log (`router.guards.counters`; the token bucket it replaces let up to twice the rate through in
one minute: a full bucket, then a minute of refill). The counters are this process's, or, with
``shared_state``, one Redis for every replica (given at construction). /route and
/route/batch count their calls at admission instead (`router.guards.gate`), with their other
limits, in one step.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import get_args

from router.config import ApiKeyConfig, Scope, Settings
from router.errors import AuthError, ConfigError, Forbidden, RateLimited
from router.guards.counters import Counters, LocalCounters, Window

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


def limit_key(kind: str, entry: ApiKeyConfig) -> str:
    """The counter of one key's per-minute limit (by its hash: a rotated key starts afresh)."""
    return f"{kind}:{entry.sha256[:16]}"


def key_named(keys: Sequence[ApiKeyConfig], name: str | None) -> ApiKeyConfig | None:
    """The configured key a principal's name stands for (None when open or unknown)."""
    if name is None:
        return None
    return next((k for k in keys if k.name == name), None)


def retry_seconds(wait: float) -> int:
    """Retry-After in whole seconds, never 0 (a client would retry at once and be refused)."""
    return max(1, math.ceil(wait))


class KeyRing:
    """Checks a presented key against the configured keys and charges its requests per minute."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 counters: Counters | None = None):
        self.clock = clock
        self.counters: Counters = counters if counters is not None else LocalCounters(clock)
        self.remote = not isinstance(self.counters, LocalCounters)  # a charge is a round trip

    def authenticate(
        self, keys: Sequence[ApiKeyConfig], key: str | None, scope: Scope, charge: bool = True
    ) -> Principal:
        """The caller, or AuthError (401) / Forbidden (403) / RateLimited (429) saying why not;
        `charge`: count the request against the key's ``rate_per_minute`` here."""
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
        if charge:
            self._charge(entry)
        return Principal(entry.name, frozenset(entry.scopes))

    def _charge(self, entry: ApiKeyConfig) -> None:
        if entry.rate_per_minute is None:
            return
        window = Window(limit_key("rpm", entry), entry.rate_per_minute)
        taken = self.counters.take([window], uuid.uuid4().hex, self.clock())
        if taken.refused is not None:
            retry = retry_seconds(taken.retry_after)
            raise RateLimited(
                f"API key '{entry.name}' is over its limit of {entry.rate_per_minute} requests "
                f"per minute (rate_per_minute: at most that many in any 60 seconds); retry in "
                f"{retry} s", retry_after=retry,
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
