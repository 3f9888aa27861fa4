"""What the LiteLLM and OpenAI helpers share, without importing either SDK: splitting a call's
arguments between the router and the LLM, the try-in-order loop's bookkeeping, the outcome
fields of a response, and posting them without ever failing the caller's call."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.client import RouterClient
from tier_router_client.errors import TierRouterError
from tier_router_client.types import Decision, Receipt

log = logging.getLogger("tier_router_client")

# /route fields that are not the LLM API's: they go to the router only.
ROUTE_ONLY = ("task", "run_id", "role", "step", "quality_target", "max_cost_usd", "tier",
              "dry_run", "verifiable")
# Fields of the LLM request the router reads too (never keys, bases or other secrets).
SHARED = ("messages", "tools", "tool_choice", "response_format", "max_tokens",
          "max_completion_tokens", "model", "metadata", "user")


class AllModelsFailed(TierRouterError):
    """The chosen model and every fallback raised; `errors` says what each one did."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("every model failed: " + "; ".join(errors))


@dataclass(frozen=True)
class RoutedCall:
    """An LLM response with the decision that chose its model and the feedback receipt
    (None when nothing was posted: a fail-open decision, or the router was unreachable).
    With a `check`: whether the answer passed it, and every decision tried in order (the
    escalated-from ones first)."""

    response: Any
    decision: Decision
    model_used: str
    receipt: Receipt | None
    passed: bool | None = None
    tried: tuple[Decision, ...] = ()


def logprob_mean(response: Any) -> float | None:
    """The mean token log-probability of a chat completion's first choice, when the provider
    returned log-probabilities (the call asked with ``logprobs=True``); else None."""
    choices = getattr(response, "choices", None) or []
    content = getattr(getattr(choices[0], "logprobs", None), "content", None) if choices else None
    values = [float(t.logprob) for t in content or [] if getattr(t, "logprob", None) is not None]
    return min(0.0, sum(values) / len(values)) if values else None


def split(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the /route body, the LLM call's kwargs) of one call's keyword arguments; `model`
    ("auto", or a ceiling) goes to the router only."""
    if kwargs.get("stream"):
        raise ValueError("The 'stream' parameter must be false here: a stream's usage is known "
                         "only once consumed. Route with RouterClient.route and report yourself.")
    route = {k: kwargs[k] for k in (*ROUTE_ONLY, *SHARED) if kwargs.get(k) is not None}
    llm = {k: v for k, v in kwargs.items() if k not in ROUTE_ONLY and k != "model"}
    return route, llm


def error_kind(exc: BaseException) -> str:
    """The /feedback `error` kind of an LLM call's exception: the service counts timeout,
    rate_limited and server_error against the model. OpenAI's and LiteLLM's exceptions carry
    the HTTP status or say it in their class name (APITimeoutError, RateLimitError,
    InternalServerError, APIConnectionError, BadRequestError, ...)."""
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    name = type(exc).__name__.lower()
    if "timeout" in name or status in (408, 504):
        return "timeout"
    if "ratelimit" in name or status == 429:
        return "rate_limited"
    if "contentpolicy" in name or "contentfilter" in name:
        return "content_filter"
    if "authentication" in name or "permission" in name or status in (401, 403):
        return "auth"
    if ("connection" in name or "serviceunavailable" in name or "internalserver" in name
            or (status is not None and status >= 500)):
        return "server_error"
    if ("badrequest" in name or "contextwindow" in name or "notfound" in name
            or "unprocessable" in name or (status is not None and 400 <= status < 500)):
        return "bad_request"
    return "other"


class Attempts:
    """The bookkeeping of trying a decision's models in order: each failed link (its model,
    error kind and latency) and the time the current try started."""

    def __init__(self, decision: Decision):
        self.decision = decision
        self.tried_at = time.perf_counter()
        self.errors: list[str] = []
        self.links: list[dict[str, Any]] = []
        self.last: Exception | None = None

    def failed(self, model: str, exc: Exception) -> None:
        now = time.perf_counter()
        self.errors.append(f"{model}: {type(exc).__name__}: {exc}"[:1000])
        self.links.append({"model": model, "error": error_kind(exc),
                           "latency_ms": (now - self.tried_at) * 1000})
        self.tried_at, self.last = now, exc

    def outcome(self, response: Any, model: str, cost_usd: float | None) -> dict[str, Any]:
        """What the SDK knows of a finished call, as /feedback fields (no quality label): the
        answering model's own latency, and the links that failed before it."""
        usage = getattr(response, "usage", None)
        details = getattr(usage, "prompt_tokens_details", None)
        return {"model_used": model, "latency_ms": (time.perf_counter() - self.tried_at) * 1000,
                "attempts": self.links or None, "fallback_used": model != self.decision.model,
                "cost_usd": cost_usd,
                "tokens_in": getattr(usage, "prompt_tokens", None),
                "tokens_out": getattr(usage, "completion_tokens", None),
                "cached_tokens_in": getattr(details, "cached_tokens", None) or None}

    def failure(self) -> dict[str, Any]:
        """Every model failed: the last one is the outcome, the others its attempts."""
        last = self.links[-1]
        return {"model_used": last["model"], "latency_ms": last["latency_ms"],
                "error": last["error"], "attempts": self.links[:-1] or None,
                "fallback_used": last["model"] != self.decision.model}

    def all_failed(self) -> AllModelsFailed:
        error = AllModelsFailed(self.errors)
        error.__cause__ = self.last
        return error


def report(router: RouterClient, decision: Decision, fields: Mapping[str, Any]
           ) -> Receipt | None:
    """Post the outcome; a router that cannot take it is logged, never the caller's failure
    (the LLM's answer is already in hand)."""
    try:
        return router.feedback(decision, **fields)
    except TierRouterError as exc:
        log.warning("outcome of decision %s not reported: %s", decision.decision_id, exc)
        return None


async def areport(router: AsyncRouterClient, decision: Decision, fields: Mapping[str, Any]
                  ) -> Receipt | None:
    try:
        return await router.feedback(decision, **fields)
    except TierRouterError as exc:
        log.warning("outcome of decision %s not reported: %s", decision.decision_id, exc)
        return None
