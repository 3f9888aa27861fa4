"""The LiteLLM proxy: a virtual model (`auto`) resolved by tier-router on every call.

A `CustomLogger` whose `async_pre_call_hook` (the proxy's documented place to change a request
before it is routed) asks `/route` for a call to the virtual model and rewrites `model` to the
decision's model and `fallbacks` to its fallbacks (those the proxy serves); the post-call hooks
post the outcome (tokens, cost, latency, error) as outcome-only feedback. Calls to any other
model pass untouched. When tier-router cannot answer, the hook fails open to `fail_open_model`,
or else leaves the call to the virtual model's own `model_list` entry; a 4xx from it (a bad
field, an exhausted budget) is the proxy's answer with that status. The run, role and step come
from the request's `metadata`, or from its `user` field as ``run_id=r1;role=planner;step=3``
for frameworks that can set only `user`; `metadata` may carry the router's knobs too
(quality_target, max_cost_usd, tier, dry_run).

Register an instance in the proxy config (see examples/litellm_proxy/):

    litellm_settings:
      callbacks: tier_router_callbacks.tier_router   # a file beside the config
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from tier_router_client._calls import SHARED, error_kind
from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.errors import RouterRefused, RouterUnavailable, TierRouterError
from tier_router_client.litellm import litellm_cost
from tier_router_client.types import Decision

log = logging.getLogger("tier_router_client")
IDS = ("task", "run_id", "role", "step")
KNOBS = ("quality_target", "max_cost_usd", "tier", "dry_run")  # taken from metadata too
KEY = "tier_router"  # where the decision travels in the request's metadata


def ids_from_user(user: Any) -> dict[str, str]:
    """`run_id=r1;role=planner;step=3` (or `run=`, commas) -> the ids; any other `user` -> {}."""
    if not isinstance(user, str) or "=" not in user:
        return {}
    out = {}
    for part in user.replace(",", ";").split(";"):
        key, _, value = part.partition("=")
        key = {"run": "run_id"}.get(key.strip(), key.strip())
        if key in IDS and value.strip():
            out[key] = value.strip()[:64]
    return out


def route_body(data: dict[str, Any]) -> dict[str, Any]:
    """The /route body of a proxy request: the LLM request's routing fields and the ids from
    its metadata or `user` (never the proxy's own metadata: keys, headers)."""
    body = {k: data[k] for k in SHARED if k not in ("model", "metadata", "user")
            and data.get(k) is not None}
    from_user = ids_from_user(data.get("user"))
    if data.get("user") is not None and not from_user:
        body["user"] = str(data["user"])[:64]
    metadata = {**(data.get("litellm_metadata") or {}), **(data.get("metadata") or {})}
    for key in IDS:
        value = metadata.get(key, from_user.get(key))
        if isinstance(value, str) and value:
            body[key] = value[:64]
    body.update({k: metadata[k] for k in KNOBS if metadata.get(k) is not None})
    return body


def refusal(exc: RouterRefused) -> Exception:
    """The router's 4xx as the proxy's HTTP error, so the agent sees its status and detail."""
    try:
        from fastapi import HTTPException
    except ImportError:
        return exc
    return HTTPException(status_code=exc.status_code, detail={"tier_router": exc.detail})


def served_by(response: Any) -> str | None:
    """The model name (the proxy's model group) that answered, after any fallback."""
    hidden = getattr(response, "_hidden_params", None) or {}
    headers = hidden.get("additional_headers") or {}
    return hidden.get("model_group") or headers.get("x-litellm-model-group")


class TierRouterHook(CustomLogger):
    """Resolves `virtual_model` per call with tier-router; reports each call's outcome."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 virtual_model: str = "auto", fail_open_model: str | None = None,
                 timeout_s: float = 2.0, served_models: list[str] | None = None):
        super().__init__()
        self.virtual_model = virtual_model
        self.served_models = served_models
        self._options = dict(base_url=base_url, api_key=api_key, timeout_s=timeout_s,
                             fail_open_model=fail_open_model)
        self._router: AsyncRouterClient | None = None  # built on first use, never at import

    @classmethod
    def from_env(cls) -> TierRouterHook:
        """From TIER_ROUTER_URL, TIER_ROUTER_API_KEY, TIER_ROUTER_VIRTUAL_MODEL and
        TIER_ROUTER_FAIL_OPEN_MODEL (the proxy loads callbacks by dotted path)."""
        env = os.environ
        return cls(env.get("TIER_ROUTER_URL", "http://127.0.0.1:8000"),
                   api_key=env.get("TIER_ROUTER_API_KEY"),
                   virtual_model=env.get("TIER_ROUTER_VIRTUAL_MODEL", "auto"),
                   fail_open_model=env.get("TIER_ROUTER_FAIL_OPEN_MODEL"))

    @property
    def router(self) -> AsyncRouterClient:
        if self._router is None:
            self._router = AsyncRouterClient(**self._options)  # type: ignore[arg-type]
        return self._router

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict,
                                  call_type: Any) -> dict:
        """Rewrite a call to the virtual model into the routed model and its fallbacks."""
        if data.get("model") != self.virtual_model:
            return data
        try:
            decision = await self.router.route(route_body(data))
        except RouterUnavailable as exc:  # no fail_open_model: the virtual model's own entry
            log.warning("tier-router unavailable, %s served by its own deployment: %s",
                        self.virtual_model, exc)
            return data
        except RouterRefused as exc:  # the caller's request is wrong, or over a budget
            raise refusal(exc) from exc
        served = self._served()
        data["model"] = decision.model
        fallbacks = [m for m in decision.fallbacks if served is None or m in served]
        if fallbacks:
            data["fallbacks"] = fallbacks
        metadata = data.setdefault("metadata", {})
        metadata[KEY] = {"decision_id": decision.decision_id, "model": decision.model,
                         "fail_open": decision.fail_open, "started": time.perf_counter()}
        log.info("routed %s -> %s (%s)", self.virtual_model, decision.model, decision.reason)
        return data

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any,
                                           response: Any) -> Any:
        routed = (data.get("metadata") or {}).get(KEY)
        if not routed:
            return response
        model = served_by(response) or routed["model"]
        usage = getattr(response, "usage", None)
        details = getattr(usage, "prompt_tokens_details", None)
        await self._report(routed, model_used=model, cost_usd=litellm_cost(response),
                           tokens_in=getattr(usage, "prompt_tokens", None),
                           tokens_out=getattr(usage, "completion_tokens", None),
                           cached_tokens_in=getattr(details, "cached_tokens", None) or None,
                           fallback_used=model != routed["model"])
        return response

    async def async_post_call_failure_hook(self, request_data: dict, original_exception: Exception,
                                           user_api_key_dict: Any,
                                           traceback_str: str | None = None) -> None:
        routed = (request_data.get("metadata") or {}).get(KEY)
        if routed:
            await self._report(routed, model_used=routed["model"],
                               error=error_kind(original_exception))
        return None

    async def _report(self, routed: dict, **fields: Any) -> None:
        if routed.get("fail_open") or not routed.get("decision_id"):
            return
        fields["latency_ms"] = (time.perf_counter() - routed["started"]) * 1000
        decision = Decision(model=routed["model"], fallbacks=[], reason="",
                            decision_id=routed["decision_id"])
        try:
            await self.router.feedback(decision, **fields)
        except TierRouterError as exc:
            log.warning("outcome of decision %s not reported: %s", routed["decision_id"], exc)

    def _served(self) -> set[str] | None:
        """The model names this proxy serves, when known (fallbacks outside them are dropped)."""
        if self.served_models is not None:
            return set(self.served_models)
        try:
            from litellm.proxy.proxy_server import llm_router
        except ImportError:
            return None
        return set(llm_router.get_model_names()) if llm_router is not None else None
