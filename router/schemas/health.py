"""What a model's health looks like to clients: the error kinds `/feedback` takes, which of them
count against a model, and a model's state as `GET /tiers` shows it."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from router.schemas.numbers import Cost

# The kinds of failure a /feedback `error` names. Map the provider's answer to one:
# - timeout: no answer in time (client or gateway timeout, HTTP 408/504)
# - rate_limited: the provider refused for load (HTTP 429, "overloaded")
# - server_error: the provider failed (HTTP 5xx, connection refused or reset)
# - bad_request: the call itself was wrong (HTTP 400/404/422, context length exceeded)
# - auth: the caller's provider key was refused (HTTP 401/403)
# - content_filter: the provider declined the content
# - other: anything else
ErrorKind = Literal["timeout", "rate_limited", "server_error", "bad_request", "auth",
                    "content_filter", "other"]
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
# The provider's fault: these count against the model that was used; the rest (the caller's
# fault, or unknown) say nothing about the model's health and are not counted at all.
HEALTH_ERRORS = frozenset({"timeout", "rate_limited", "server_error"})
ERROR_DOC = (
    "Why the call failed, if it did: timeout, rate_limited and server_error (HTTP 5xx, "
    "connection refused) count against the model used; bad_request, auth, content_filter and "
    "other do not."
)

CircuitState = Literal["closed", "open", "half_open"]
MAX_ATTEMPTS = 16


class Attempt(BaseModel):
    """A model of the chain tried before `model_used`, and how it failed (a fallback)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=256)
    error: ErrorKind = Field(description=ERROR_DOC)
    latency_ms: Cost | None = None


ATTEMPTS_DOC = (
    "The models tried before model_used, in order, each with how it failed: a fallback chain's "
    "failed links count against their own models (timeout, rate_limited, server_error), while "
    "error and latency_ms describe the call of model_used."
)


class ModelHealthInfo(BaseModel):
    """One deployed model's health over the `health.window_s` window."""

    model: str
    state: CircuitState = Field(
        description="closed: served; open: skipped; half_open: cooled down, probed on "
                    "health.probe_share of its calls.")
    calls: int = Field(description="Outcomes reported in the window (bad requests not counted).")
    errors: int = Field(description="Of which timeout, rate_limited or server_error.")
    error_rate: float | None = Field(description="errors / calls; null without calls.")
    latency_p50_ms: float | None = Field(description="Median latency of its successful calls.")
    latency_p95_ms: float | None = None
    retry_at: float | None = Field(
        default=None, description="Open: epoch seconds when probing starts.")
    why: str | None = Field(default=None, description="Why the circuit is open.")
