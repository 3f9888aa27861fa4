"""`AsyncRouterClient`: the asyncio client, the same API as `RouterClient` with awaits."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tier_router_client import _core
from tier_router_client._core import Options
from tier_router_client.errors import RouterUnavailable
from tier_router_client.types import Decision, Receipt


class AsyncRouterClient:
    """Ask tier-router which model to call, and tell it how the call went (asyncio).

    `fail_open_model`: the model to use when the router cannot answer (no connection, a
    timeout, 5xx after retries); the decision then says ``fail_open=True`` and why. Without
    it, `route` raises `RouterUnavailable` instead. A 4xx is always `RouterRefused`.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout_s: float = 5.0, retries: int = 2, backoff_s: float = 0.1,
                 max_backoff_s: float = 2.0, max_retry_after_s: float = 10.0,
                 fail_open_model: str | None = None, fail_open_fallbacks: Sequence[str] = (),
                 fail_open_tier: str | None = None, http: httpx.AsyncClient | None = None):
        self.options = Options(base_url.rstrip("/"), api_key, timeout_s, retries, backoff_s,
                               max_backoff_s, max_retry_after_s, fail_open_model,
                               tuple(fail_open_fallbacks), fail_open_tier)
        self._http = http or httpx.AsyncClient(timeout=timeout_s)
        self._owns_http = http is None

    async def route(self, body: Mapping[str, Any] | None = None, /, **fields: Any) -> Decision:
        """Route one call: `body` is the LLM request as the agent holds it (a chat-completions
        body works as is), `fields` are /route fields (task, run_id, role, step, user,
        quality_target, max_cost_usd, tier, dry_run, ...) added to it."""
        payload = _core.route_payload(body, fields)
        try:
            response = await self._send("/route", payload)
        except RouterUnavailable as exc:
            return _core.fail_open(self.options, exc)
        return _core.decision_of(self.options, response)

    async def route_batch(self, requests: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """Route several calls in one request; decisions in order (all fail-open together)."""
        try:
            response = await self._send("/route/batch", _core.batch_payload(requests))
        except RouterUnavailable as exc:
            return [_core.fail_open(self.options, exc) for _ in requests]
        return _core.decisions_of(self.options, response)

    async def escalate(self, decision: Decision | str, body: Mapping[str, Any] | None = None, /,
                 *, reason: str = "check_failed", logprob_mean: float | None = None,
                 detail: str | None = None, **fields: Any) -> Decision:
        """The next decision for a call whose answer from `decision` failed a check: the same
        `body` and `fields` as its /route call, `reason` one of `ESCALATION_REASONS`. The
        router records the failure (a label posted later for `decision` is ignored) and
        answers a stronger tier; `RouterRefused` (409) when there is none, or the decision was
        escalated from already. Never fails open: a failed cheap answer has no default."""
        payload = _core.escalation_payload(decision, body, fields, reason, logprob_mean, detail)
        return _core.decision_of(self.options, await self._send("/route", payload))

    async def complete(self, body: Mapping[str, Any] | None = None, /, *, call: Any,
                 check: Any, **fields: Any) -> Any:
        """Route, call, check, escalate on a failed check, report: see
        `tier_router_client.cascade.acomplete`."""
        from tier_router_client import cascade

        return await cascade.acomplete(self, body, call=call, check=check, **fields)

    async def feedback(self, decision: Decision | str, *, quality: float | None = None,
                 success: bool | None = None, model_used: str | None = None,
                 cost_usd: float | None = None, tokens_in: int | None = None,
                 tokens_out: int | None = None, cached_tokens_in: int | None = None,
                 latency_ms: float | None = None, error: str | None = None,
                 fallback_used: bool = False,
                 attempts: list[dict[str, Any]] | None = None,
                 check_passed: bool | None = None) -> Receipt | None:
        """Report the outcome of a routed call. Without `quality`/`success` it is outcome-only
        feedback (tokens, cost, latency, error): it counts for spend and model health, never
        for learning. `error` is a kind (timeout, rate_limited, server_error, bad_request,
        auth, content_filter, other; `error_kind` maps an exception); `attempts` are the
        models tried before `model_used`, each {model, error, latency_ms}; `check_passed`
        whether the caller's check of the answer passed (it teaches the router's plans for
        verifiable calls). None (nothing posted) for a fail-open decision."""
        if _core.skip_feedback(decision):
            return None
        body = _core.feedback_payload(decision, dict(
            quality=quality, success=success, model_used=model_used, cost_usd=cost_usd,
            tokens_in=tokens_in, tokens_out=tokens_out, cached_tokens_in=cached_tokens_in,
            latency_ms=latency_ms, error=error, fallback_used=fallback_used, attempts=attempts,
            check_passed=check_passed))
        return _core.receipt_of(self.options, await self._send("/feedback", body))

    async def run_outcome(self, run_id: str, *, success: bool | None = None,
                          quality: float | None = None) -> dict[str, Any]:
        """Report how a whole run ended (success and/or quality 0-1), once per run: the same
        again answers status "duplicate", a different one is `RouterRefused` (409). Only a
        key that made the run's calls may report it. Returns the service's receipt."""
        path, body = _core.run_outcome_request(run_id, success, quality)
        return _core.read_json(self.options, await self._send(path, body))

    async def _send(self, path: str, payload: Mapping[str, Any]) -> httpx.Response:
        """POST with retries; RouterUnavailable when no attempt got an answer worth keeping."""
        opts, attempt = self.options, 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.post(opts.base_url + path, json=payload,
                                           headers=opts.headers(), timeout=opts.timeout_s)
            except httpx.TransportError as exc:
                delay = _core.retry_delay(opts, attempt, None)
                if delay is None:
                    raise _core.unavailable(opts, attempt + 1, _core.describe(exc)) from exc
            else:
                delay = _core.retry_delay(opts, attempt, response)
                if delay is None:
                    _core.final_or_unavailable(opts, attempt + 1, response)
                    return response
            await asyncio.sleep(delay)
            attempt += 1

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRouterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
