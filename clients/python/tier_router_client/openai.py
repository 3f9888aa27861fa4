"""The OpenAI SDK: route, call `client.chat.completions.create` with the chosen model (then the
decision's fallbacks on an API error), and report the outcome (tokens, cached tokens, latency,
error) as outcome-only feedback. The SDK returns no price, so the service prices the tokens
at the tier's prices.

    call = create(router, OpenAI(), messages=[...], run_id="run-7")

A run's final outcome (`POST /runs/{run_id}/outcome`) is reported when its block ends:

    with reporting_run(router, "run-7") as run:
        create(router, OpenAI(), messages=[...], run_id=run.run_id)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

__all__ = ["AllModelsFailed", "RoutedCall", "RunScope", "acreate", "areporting_run", "create",
           "reporting_run"]


def create(router: RouterClient, client: openai.OpenAI, *,
           check: Callable[[Any], Any] | None = None, **kwargs: Any) -> RoutedCall:
    """`client.chat.completions.create(**kwargs)` on the routed model; /route fields (task,
    run_id, role, step, quality_target, max_cost_usd, tier, dry_run) go to the router only.
    With `check`: try cheap, check, escalate (`tier_router_client.cascade`); ``logprobs=True``
    asks the provider for log-probabilities and sends the failed answer's mean with its
    escalation."""
    route, llm_kwargs = split(kwargs)
    if check is not None:
        def call(decision: Decision) -> Answer:
            return _answer(router, client, decision, llm_kwargs)

        return routed_call(complete(router, route, call=call, check=check))
    decision = router.route(route)
    answer = _answer(router, client, decision, llm_kwargs)
    receipt = report(router, decision, answer.outcome)
    return RoutedCall(answer.response, decision, answer.outcome["model_used"], receipt)


async def acreate(router: AsyncRouterClient, client: openai.AsyncOpenAI, *,
                  check: Callable[[Any], Any] | None = None, **kwargs: Any) -> RoutedCall:
    """`create` for asyncio, with an `AsyncOpenAI` client."""
    route, llm_kwargs = split(kwargs)
    if check is not None:
        async def call(decision: Decision) -> Answer:
            return await _aanswer(router, client, decision, llm_kwargs)

        return routed_call(await acomplete(router, route, call=call, check=check))
    decision = await router.route(route)
    answer = await _aanswer(router, client, decision, llm_kwargs)
    receipt = await areport(router, decision, answer.outcome)
    return RoutedCall(answer.response, decision, answer.outcome["model_used"], receipt)


def _answer(router: RouterClient, client: openai.OpenAI, decision: Decision,
            llm_kwargs: dict[str, Any]) -> Answer:
    """One decision's call (its models in order) as the cascade reads it: its outcome fields
    and, if asked, its confidence; every model failing is reported and raised."""
    tries = Attempts(decision)
    for model in decision.models:
        try:
            response = client.chat.completions.create(model=model, **llm_kwargs)
        except openai.APIError as exc:
            tries.failed(model, exc)
            continue
        return Answer(response, tries.outcome(response, model, None),
                      logprob_mean(response) if llm_kwargs.get("logprobs") else None)
    report(router, decision, tries.failure())
    raise tries.all_failed()


async def _aanswer(router: AsyncRouterClient, client: openai.AsyncOpenAI, decision: Decision,
                   llm_kwargs: dict[str, Any]) -> Answer:
    """`_answer` for asyncio."""
    tries = Attempts(decision)
    for model in decision.models:
        try:
            response = await client.chat.completions.create(model=model, **llm_kwargs)
        except openai.APIError as exc:
            tries.failed(model, exc)
            continue
        return Answer(response, tries.outcome(response, model, None),
                      logprob_mean(response) if llm_kwargs.get("logprobs") else None)
    await areport(router, decision, tries.failure())
    raise tries.all_failed()
