"""The OpenAI SDK: route, call `client.chat.completions.create` with the chosen model (then the
decision's fallbacks on an API error), and report the outcome (tokens, cached tokens, latency,
error) as outcome-only feedback. The SDK returns no price, so the service prices the tokens
at the tier's prices.

    call = create(router, OpenAI(), messages=[...], run_id="run-7")
"""

from __future__ import annotations

from typing import Any

import openai

from tier_router_client._calls import AllModelsFailed, Attempts, RoutedCall, areport, report, split
from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.client import RouterClient

__all__ = ["AllModelsFailed", "RoutedCall", "acreate", "create"]


def create(router: RouterClient, client: openai.OpenAI, **kwargs: Any) -> RoutedCall:
    """`client.chat.completions.create(**kwargs)` on the routed model; /route fields (task,
    run_id, role, step, quality_target, max_cost_usd, tier, dry_run) go to the router only."""
    route, llm_kwargs = split(kwargs)
    decision = router.route(route)
    tries = Attempts(decision)
    for model in decision.models:
        try:
            response = client.chat.completions.create(model=model, **llm_kwargs)
        except openai.APIError as exc:
            tries.failed(model, exc)
            continue
        receipt = report(router, decision, tries.outcome(response, model, None))
        return RoutedCall(response, decision, model, receipt)
    report(router, decision, tries.failure())
    raise tries.all_failed()


async def acreate(router: AsyncRouterClient, client: openai.AsyncOpenAI,
                  **kwargs: Any) -> RoutedCall:
    """`create` for asyncio, with an `AsyncOpenAI` client."""
    route, llm_kwargs = split(kwargs)
    decision = await router.route(route)
    tries = Attempts(decision)
    for model in decision.models:
        try:
            response = await client.chat.completions.create(model=model, **llm_kwargs)
        except openai.APIError as exc:
            tries.failed(model, exc)
            continue
        fields = tries.outcome(response, model, None)
        return RoutedCall(response, decision, model, await areport(router, decision, fields))
    await areport(router, decision, tries.failure())
    raise tries.all_failed()
