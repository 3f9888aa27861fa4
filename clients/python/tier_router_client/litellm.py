"""LiteLLM in the SDK: ask tier-router which model, call it through LiteLLM, fall back along the
decision's `fallbacks` on an API error, and post the outcome (tokens, cost, latency, error) as
outcome-only feedback: LiteLLM knows what a call cost, not whether its answer was good.

    call = completion(router, messages=[...], run_id="run-7", role="support")
    call.response.choices[0].message.content

The call goes to `litellm.completion` (model names as LiteLLM knows them), or to a
`litellm.Router` you pass as `llm` (its `model_list` maps the router's model names to your
deployments, keys and bases). Why not a LiteLLM custom routing strategy or routing plugin: both
choose among the deployments of the one model group a call named, so neither can follow the
decision's cross-model fallbacks or report the outcome; the proxy's pre-call hook can, see
`tier_router_client.litellm_proxy`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import litellm
import openai

from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.client import RouterClient
from tier_router_client.errors import TierRouterError
from tier_router_client.types import Decision, Receipt

log = logging.getLogger("tier_router_client")

# /route fields that are not LiteLLM's: they go to the router only.
ROUTE_ONLY = ("task", "run_id", "role", "step", "quality_target", "max_cost_usd", "tier",
              "dry_run")
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
    """A LiteLLM response with the decision that chose its model and the feedback receipt
    (None when nothing was posted: a fail-open decision, or the router was unreachable)."""

    response: Any
    decision: Decision
    model_used: str
    receipt: Receipt | None


def split(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the /route body, the LiteLLM kwargs) of one call's keyword arguments."""
    if kwargs.get("stream"):
        raise ValueError("The 'stream' parameter must be false here: a stream's usage is known "
                         "only once consumed. Route with RouterClient.route and report yourself.")
    route = {k: kwargs[k] for k in (*ROUTE_ONLY, *SHARED) if kwargs.get(k) is not None}
    llm = {k: v for k, v in kwargs.items() if k not in ROUTE_ONLY and k != "model"}
    return route, llm


def outcome(response: Any, model: str, started: float, errors: list[str],
            fallback_used: bool) -> dict[str, Any]:
    """What LiteLLM knows of a finished call, as /feedback fields (no quality label)."""
    usage = getattr(response, "usage", None)
    details = getattr(usage, "prompt_tokens_details", None)
    return {
        "model_used": model,
        "tokens_in": getattr(usage, "prompt_tokens", None),
        "tokens_out": getattr(usage, "completion_tokens", None),
        "cached_tokens_in": getattr(details, "cached_tokens", None) or None,
        "cost_usd": _cost(response),
        "latency_ms": (time.perf_counter() - started) * 1000,
        "error": "; ".join(errors) or None,
        "fallback_used": fallback_used,
    }


def _cost(response: Any) -> float | None:
    """LiteLLM's own price of the response (its model cost map), or None if it has none."""
    hidden = getattr(response, "_hidden_params", None) or {}
    if hidden.get("response_cost") is not None:
        return float(hidden["response_cost"])
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception as exc:  # noqa: BLE001 - LiteLLM raises a bare Exception for unknown models
        log.info("no LiteLLM price for %s: %s", getattr(response, "model", "?"), exc)
        return None


def failure(model: str, started: float, errors: list[str], fallback_used: bool) -> dict:
    return {"model_used": model, "latency_ms": (time.perf_counter() - started) * 1000,
            "error": "; ".join(errors), "fallback_used": fallback_used}


def describe(model: str, exc: Exception) -> str:
    return f"{model}: {type(exc).__name__}: {exc}"[:1000]


def completion(router: RouterClient, *, llm: litellm.Router | None = None,
               **kwargs: Any) -> RoutedCall:
    """Route, call through LiteLLM (with fallbacks), report. `kwargs` are LiteLLM's
    `completion` arguments plus /route fields (task, run_id, role, step, quality_target,
    max_cost_usd, tier, dry_run); `model` ("auto", or a ceiling) goes to the router only."""
    route, llm_kwargs = split(kwargs)
    decision = router.route(route)
    started, errors = time.perf_counter(), []
    for i, model in enumerate(decision.models):
        try:
            response = (llm or litellm).completion(model=model, **llm_kwargs)
        except openai.APIError as exc:
            errors.append(describe(model, exc))
            last: Exception = exc
            continue
        receipt = _report(router, decision, outcome(response, model, started, errors, i > 0))
        return RoutedCall(response, decision, model, receipt)
    _report(router, decision, failure(model, started, errors, len(errors) > 1))
    raise AllModelsFailed(errors) from last


async def acompletion(router: AsyncRouterClient, *, llm: litellm.Router | None = None,
                      **kwargs: Any) -> RoutedCall:
    """`completion` for asyncio: the same steps with `litellm.acompletion`."""
    route, llm_kwargs = split(kwargs)
    decision = await router.route(route)
    started, errors = time.perf_counter(), []
    for i, model in enumerate(decision.models):
        try:
            response = await (llm or litellm).acompletion(model=model, **llm_kwargs)
        except openai.APIError as exc:
            errors.append(describe(model, exc))
            last: Exception = exc
            continue
        receipt = await _areport(router, decision,
                                 outcome(response, model, started, errors, i > 0))
        return RoutedCall(response, decision, model, receipt)
    await _areport(router, decision, failure(model, started, errors, len(errors) > 1))
    raise AllModelsFailed(errors) from last


def _report(router: RouterClient, decision: Decision, fields: dict) -> Receipt | None:
    """Post the outcome; a router that cannot take it is logged, never the caller's failure
    (the LLM's answer is already in hand)."""
    try:
        return router.feedback(decision, **fields)
    except TierRouterError as exc:
        log.warning("outcome of decision %s not reported: %s", decision.decision_id, exc)
        return None


async def _areport(router: AsyncRouterClient, decision: Decision, fields: dict) -> Receipt | None:
    try:
        return await router.feedback(decision, **fields)
    except TierRouterError as exc:
        log.warning("outcome of decision %s not reported: %s", decision.decision_id, exc)
        return None
