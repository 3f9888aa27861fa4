"""tier-router's Python client: `route` before an LLM call, `feedback` after it, fail-open
when the router cannot answer. httpx only; the LiteLLM and OpenAI helpers
(`tier_router_client.litellm`, `tier_router_client.openai`) import their SDKs when used."""

from tier_router_client._core import __version__
from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.client import RouterClient
from tier_router_client.errors import RouterRefused, RouterUnavailable, TierRouterError
from tier_router_client.types import Decision, Receipt

__all__ = [
    "AsyncRouterClient", "Decision", "Receipt", "RouterClient", "RouterRefused",
    "RouterUnavailable", "TierRouterError", "__version__",
]
