"""LiteLLM in the SDK: ask tier-router which model, call it through LiteLLM, fall back along the
decision's `fallbacks` on an API error, and post the outcome (tokens, cost, latency, error) as
outcome-only feedback: LiteLLM knows what a call cost, not whether its answer was good.

    call = completion(router, messages=[...], run_id="run-7", role="support")
    call.response.choices[0].message.content

The call goes to `litellm.completion` (model names as LiteLLM knows them), or to a
`litellm.Router` passed as `llm` (its `model_list` maps the router's model names to your
deployments, keys and bases). Why not a LiteLLM custom routing strategy or routing plugin: both
choose among the deployments of the one model group a call named, so neither can follow the
decision's cross-model fallbacks or report the outcome; in the proxy the pre-call hook can
(`tier_router_client.litellm_proxy`).

A run's final outcome (`POST /runs/{run_id}/outcome`) is reported when its block ends:

    with reporting_run(router, "run-7") as run:
        completion(router, messages=[...], run_id=run.run_id)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import litellm
import openai

from tier_router_client._calls import (
    AllModelsFailed,
    Attempts,
    RoutedCall,
    areport,
    logprob_mean,
    report,
    split,
)
from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.cascade import Answer, acomplete, complete, routed_call
from tier_router_client.client import RouterClient
from tier_router_client.runs import RunScope, areporting_run, reporting_run
from tier_router_client.types import Decision

__all__ = ["AllModelsFailed", "RoutedCall", "RunScope", "acompletion", "areporting_run",
           "completion", "litellm_cost", "reporting_run"]
log = logging.getLogger("tier_router_client")


def litellm_cost(response: Any) -> float | None:
    """LiteLLM's own price of a response (its model cost map), or None if it has none."""
    hidden = getattr(response, "_hidden_params", None) or {}
    if hidden.get("response_cost") is not None:
        return float(hidden["response_cost"])
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception as exc:  # noqa: BLE001 - LiteLLM raises a bare Exception for unknown models
        log.info("no LiteLLM price for %s: %s", getattr(response, "model", "?"), exc)
        return None


def completion(router: RouterClient, *, llm: litellm.Router | None = None,
               check: Callable[[Any], Any] | None = None, **kwargs: Any) -> RoutedCall:
    """Route, call through LiteLLM (with fallbacks), report. `kwargs` are LiteLLM's
    `completion` arguments plus /route fields (task, run_id, role, step, quality_target,
    max_cost_usd, tier, dry_run). With `check`: try cheap, check, escalate
    (`tier_router_client.cascade`); ``logprobs=True`` asks the provider for log-probabilities
    and sends the failed answer's mean with its escalation."""
    route, llm_kwargs = split(kwargs)
    if check is not None:
        def call(decision: Decision) -> Answer:
            return _answer(router, decision, llm, llm_kwargs)

        return routed_call(complete(router, route, call=call, check=check))
    decision = router.route(route)
    answer = _answer(router, decision, llm, llm_kwargs)
    receipt = report(router, decision, answer.outcome)
    return RoutedCall(answer.response, decision, answer.outcome["model_used"], receipt)


async def acompletion(router: AsyncRouterClient, *, llm: litellm.Router | None = None,
                      check: Callable[[Any], Any] | None = None, **kwargs: Any) -> RoutedCall:
    """`completion` for asyncio: the same steps with `litellm.acompletion`."""
    route, llm_kwargs = split(kwargs)
    if check is not None:
        async def call(decision: Decision) -> Answer:
            return await _aanswer(router, decision, llm, llm_kwargs)

        return routed_call(await acomplete(router, route, call=call, check=check))
    decision = await router.route(route)
    answer = await _aanswer(router, decision, llm, llm_kwargs)
    receipt = await areport(router, decision, answer.outcome)
    return RoutedCall(answer.response, decision, answer.outcome["model_used"], receipt)


def _answer(router: RouterClient, decision: Decision, llm: litellm.Router | None,
            llm_kwargs: dict[str, Any]) -> Answer:
    """One decision's call (its models in order) as the cascade reads it; every model failing
    is reported and raised, as without a check."""
    tries = Attempts(decision)
    for model in decision.models:
        try:
            response = (llm or litellm).completion(model=model, **llm_kwargs)
        except openai.APIError as exc:  # LiteLLM's errors are the OpenAI SDK's types
            tries.failed(model, exc)
            continue
        return Answer(response, tries.outcome(response, model, litellm_cost(response)),
                      logprob_mean(response) if llm_kwargs.get("logprobs") else None)
    report(router, decision, tries.failure())
    raise tries.all_failed()


async def _aanswer(router: AsyncRouterClient, decision: Decision, llm: litellm.Router | None,
                   llm_kwargs: dict[str, Any]) -> Answer:
    tries = Attempts(decision)
    for model in decision.models:
        try:
            response = await (llm or litellm).acompletion(model=model, **llm_kwargs)
        except openai.APIError as exc:
            tries.failed(model, exc)
            continue
        return Answer(response, tries.outcome(response, model, litellm_cost(response)),
                      logprob_mean(response) if llm_kwargs.get("logprobs") else None)
    await areport(router, decision, tries.failure())
    raise tries.all_failed()

