"""What the sync and async clients share: options, request bodies, the retry rule, reading
answers and the fail-open decision. Everything here is pure; the clients only do the I/O."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tier_router_client.errors import RouterRefused, RouterUnavailable
from tier_router_client.types import Decision, Receipt

__version__ = "0.1.0"
log = logging.getLogger("tier_router_client")


@dataclass(frozen=True)
class Options:
    """How a client talks to the router and what it does when the router cannot answer."""

    base_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    max_retry_after_s: float = 10.0
    fail_open_model: str | None = None
    fail_open_fallbacks: tuple[str, ...] = ()
    fail_open_tier: str | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_s", "backoff_s", "max_backoff_s", "max_retry_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"The '{name}' parameter must be >= 0. "
                                 f"Got {getattr(self, name)} instead.")
        if self.retries < 0:
            raise ValueError(f"The 'retries' parameter must be >= 0. Got {self.retries} instead.")

    def headers(self) -> dict[str, str]:
        # every POST to the router is JSON (it refuses others with 415)
        out = {"User-Agent": f"tier-router-client/{__version__}",
               "Content-Type": "application/json"}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out


def retry_delay(options: Options, attempt: int, response: httpx.Response | None) -> float | None:
    """Seconds to wait before the next attempt, or None if this answer is final.

    Connect errors and timeouts (no response), 5xx and 408 are retried with exponential
    backoff; 429 waits what `Retry-After` says, and is final when that is longer than
    `max_retry_after_s` (a rate limit minutes away is not worth blocking an agent for).
    """
    if attempt >= options.retries:
        return None
    backoff = min(options.max_backoff_s, options.backoff_s * 2**attempt)
    if response is None:
        return backoff
    status = response.status_code
    if status == 429:
        after = _retry_after(response)
        if after is None:
            return backoff
        return after if after <= options.max_retry_after_s else None
    if status == 408 or status >= 500:
        return backoff
    return None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def unavailable(options: Options, attempts: int, cause: str) -> RouterUnavailable:
    return RouterUnavailable(f"tier-router at {options.base_url} did not answer: {cause} "
                             f"(after {attempts} attempt{'s' if attempts > 1 else ''})")


def describe(exc: httpx.TransportError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def final_or_unavailable(options: Options, attempts: int, response: httpx.Response) -> None:
    """After the last attempt: a 5xx or 408 means the router could not answer (fail open);
    anything else (2xx, or a 4xx such as 429) is its answer."""
    if response.status_code == 408 or response.status_code >= 500:
        raise unavailable(options, attempts, f"HTTP {response.status_code} {_detail(response)}")


def route_payload(body: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The /route body: the LLM request the caller holds (any chat-completions or Messages
    body), with keyword fields added or overriding; None values are left out."""
    payload = {**(body or {}), **fields}
    return {k: v for k, v in payload.items() if v is not None}


# The reasons /route takes in `escalation.reason`.
ESCALATION_REASONS = ("check_failed", "invalid_json", "schema_mismatch", "tool_error",
                      "tests_failed", "refusal", "low_confidence", "rejected", "other")


def escalation_payload(decision: Decision | str, body: Mapping[str, Any] | None,
                       fields: Mapping[str, Any], reason: str, logprob_mean: float | None,
                       detail: str | None) -> dict[str, Any]:
    """The /route body of an escalation: the same call, `escalate_from` the failed decision."""
    decision_id = decision if isinstance(decision, str) else decision.decision_id
    if not decision_id:
        raise ValueError("escalation needs a decision_id (a fail-open decision has none)")
    if reason not in ESCALATION_REASONS:
        raise ValueError(f"The 'reason' parameter must be one of {ESCALATION_REASONS}. "
                         f"Got {reason!r} instead.")
    why = {k: v for k, v in (("reason", reason), ("logprob_mean", logprob_mean),
                             ("detail", detail)) if v is not None}
    payload = route_payload(body, {**fields, "escalate_from": decision_id, "escalation": why})
    payload.pop("tier", None)  # it forced the first decision; an escalation picks its own
    return payload


def feedback_payload(decision: Decision | str, outcome: Mapping[str, Any]) -> dict[str, Any]:
    decision_id = decision if isinstance(decision, str) else decision.decision_id
    if not decision_id:
        raise ValueError("feedback needs a decision_id (a fail-open decision has none)")
    body = {"decision_id": decision_id, **{k: v for k, v in outcome.items() if v is not None}}
    if not body.get("fallback_used"):
        body.pop("fallback_used", None)
    return body


def run_outcome_request(run_id: str, success: bool | None, quality: float | None
                        ) -> tuple[str, dict[str, Any]]:
    """The path and body of a run's outcome report."""
    if success is None and quality is None:
        raise ValueError("give success, quality or both")
    body = {k: v for k, v in (("success", success), ("quality", quality)) if v is not None}
    return "/runs/" + quote(run_id, safe="") + "/outcome", body


def _detail(response: httpx.Response) -> Any:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    return data.get("detail", data) if isinstance(data, dict) else data


def read_json(options: Options, response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; a 4xx is `RouterRefused` with the service's detail."""
    if not response.is_success:
        raise RouterRefused(response.status_code, _detail(response))
    try:
        return response.json()
    except ValueError as exc:
        raise unavailable(options, 1, f"answer is not JSON: {exc}") from exc


def decision_of(options: Options, response: httpx.Response) -> Decision:
    return Decision.from_json(read_json(options, response))


def decisions_of(options: Options, response: httpx.Response) -> list[Decision]:
    return [Decision.from_json(d) for d in read_json(options, response)["decisions"]]


def receipt_of(options: Options, response: httpx.Response) -> Receipt:
    return Receipt.from_json(read_json(options, response))


def fail_open(options: Options, exc: RouterUnavailable) -> Decision:
    """The configured default model, marked as not the router's choice; logged. Without a
    configured `fail_open_model` the error is raised: no silent default the caller did not
    choose."""
    if options.fail_open_model is None:
        raise exc
    log.warning("tier-router unavailable, failing open to %s: %s", options.fail_open_model, exc)
    return Decision(model=options.fail_open_model, fallbacks=list(options.fail_open_fallbacks),
                    tier=options.fail_open_tier, reason="fail_open", detail=str(exc),
                    fail_open=True)


def skip_feedback(decision: Decision | str) -> bool:
    """A fail-open decision was never the router's: there is nothing to attach an outcome to."""
    if isinstance(decision, Decision) and decision.fail_open:
        log.info("not posting feedback for a fail-open decision (model %s)", decision.model)
        return True
    return False


def batch_payload(requests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"requests": [route_payload(r, {}) for r in requests]}
