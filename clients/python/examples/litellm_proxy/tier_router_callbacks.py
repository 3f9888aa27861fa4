"""The proxy's callback: loaded by dotted path from config.yaml, configured from the
environment (TIER_ROUTER_URL, TIER_ROUTER_API_KEY, TIER_ROUTER_FAIL_OPEN_MODEL)."""

from tier_router_client.litellm_proxy import TierRouterHook

tier_router = TierRouterHook.from_env()
