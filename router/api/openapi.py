"""The OpenAPI schema, with the limits and tier names of the config that is serving.

The request models cannot know the config (tiers and limits are reloadable), so the schema
FastAPI derives from them would call ``{"tier": "xyz"}`` or 600 messages valid while the
service answers 422. Writing the configured values into the schema keeps it honest for clients
and for the fuzzer; it is rebuilt when a reload brings other settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from router.api.middleware import SettingsSource
from router.config import Settings
from router.errors import ServiceNotStarted
from router.schemas import PART_CAPABILITY, PART_TYPES


def configured_openapi(
    app: FastAPI, holder: SettingsSource
) -> Callable[[], dict[str, Any]]:
    """A replacement for ``app.openapi`` that follows the current settings."""
    built: list[tuple[Settings | None, dict[str, Any]]] = []  # (for these settings, schema)

    def openapi() -> dict[str, Any]:
        try:
            current: Settings | None = holder.settings
        except ServiceNotStarted:
            current = None
        if not built or built[0][0] is not current:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                                 description=app.description)
            if current is not None:  # None only before a config file was first read
                apply_limits(schema, current)
            built[:] = [(current, schema)]
        return built[0][1]

    return openapi


def apply_limits(schema: dict[str, Any], settings: Settings) -> None:
    """Write tier names and size limits into the request components (those that exist)."""
    components = schema.get("components", {}).get("schemas", {})
    limits = settings.limits
    route = components.get("RouteRequest", {}).get("properties", {})
    _variant(route.get("tier"), "string")["enum"] = settings.tier_names
    _variant(route.get("messages"), "array")["maxItems"] = limits.max_messages
    _variant(route.get("tools"), "array")["maxItems"] = limits.max_tools
    _variant(route.get("prompt"), "string")["maxLength"] = limits.max_content_chars
    batch = components.get("BatchRouteRequest", {}).get("properties", {})
    _variant(batch.get("requests"), "array")["maxItems"] = limits.max_batch
    message = components.get("ChatMessage", {}).get("properties", {})
    _variant(message.get("content"), "string")["maxLength"] = limits.max_content_chars
    part = components.get("ContentPart", {}).get("properties", {})
    _variant(part.get("text"), "string")["maxLength"] = limits.max_content_chars
    offered = {c for t in settings.tiers for c in t.capabilities}
    if "type" in part:  # parts needing a capability no tier has are answered 422: say so here
        part["type"]["enum"] = sorted(t for t in PART_TYPES
                                      if t not in PART_CAPABILITY or PART_CAPABILITY[t] in offered)


def _variant(prop: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """The member of a (possibly nullable) property schema of JSON type ``kind``."""
    if prop is None:
        return {}
    for option in prop.get("anyOf", [prop]):
        if option.get("type") == kind:
            return option
    return {}
