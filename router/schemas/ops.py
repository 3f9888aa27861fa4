"""What operators read: tiers, readiness, and the error bodies every endpoint documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from router.schemas.health import ModelHealthInfo


class TierInfo(BaseModel):
    name: str
    models: list[str]
    input_price_per_m: float
    cached_input_price_per_m: float | None = None
    output_price_per_m: float
    context_window: int
    capabilities: list[str]
    available: bool = Field(
        default=True, description="False when every model of the tier has an open circuit.")
    health: list[ModelHealthInfo] = Field(
        default_factory=list, description="Each model's health, in the tier's order.")


class Problem(BaseModel):
    """One thing wrong with a request: the field (dotted path), what is wrong, the limit."""

    field: str
    message: str
    limit: Any = None


class ErrorBody(BaseModel):
    """Every error answer: a short kind, then the problems (4xx) or a sentence (others)."""

    error: str
    detail: list[Problem] | str | None = None


class Readiness(BaseModel):
    ready: bool
    router_version: str
    reason: str | None = None
    shared_state: str | None = None  # with `shared_state` configured: where limits are counted


_ERRORS = {
    400: "The body could not be parsed (not UTF-8 / not JSON), or nests deeper than "
         "limits.max_json_depth.",
    401: "No API key, or an unknown one.",
    402: "A budget or the run's cap (max_run_cost_usd, runs:) is spent; names which.",
    403: "The API key lacks the scope this endpoint needs; on an open service (no keys), a "
         "cross-site request, or an admin call from a client not on loopback.",
    408: "The request took longer than limits.request_timeout_s (names the limit).",
    409: "Refused: a reload whose config or model is invalid (the old one keeps serving).",
    422: "The request breaks the schema or a configured limit (body size included); names the "
         "field and the limit.",
    415: "A POST without 'Content-Type: application/json' (bodyless ones too).",
    429: "The API key is over its requests-per-minute limit; see Retry-After.",
    503: "The model is not loaded and fail_open is off, or every model the call may use has an "
         "open circuit (names the tier; see Retry-After).",
}


# What a bodyless POST (/admin/reload, /admin/learning/reset) documents as its body: `{}`; none
# is taken too, with the JSON content type all the same (a page cannot post JSON cross-site).
EMPTY_JSON_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "maxProperties": 0}}}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error answers an endpoint can give."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _ERRORS[code]}
        if code == 429:
            entry["headers"] = {"Retry-After": {
                "description": "Seconds until the key may call again.",
                "schema": {"type": "integer"}}}
        if code == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if code == 503:
            entry["headers"] = {"Retry-After": {
                "description": "No healthy model: seconds until the first one is probed again.",
                "schema": {"type": "integer"}}}
        out[code] = entry
    return out
