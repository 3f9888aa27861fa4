"""From a POST /feedback body to one outcome row: which model, which tier, what it cost.

Two kinds of body share the endpoint. One with ``messages`` or ``prompt`` is a trace in the
TRACES.md format (a call that may have bypassed the router); anything else is `Feedback` for a
``decision_id``. The idempotency key (``feedback_id``) is the decision id, one outcome per
decision; a trace without a decision is keyed by the sha256 of its canonical body, so posting
the same trace twice stores it once.

Cost: the reported ``cost_usd`` when there is one (``cost_estimated`` 0); else the tier's
config prices times the reported tokens (cached input tokens at the cached-input price; or the
decision's estimate of them, and the config's ``expected_output_tokens``), marked estimated.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from pydantic import BaseModel

from router.config import Settings, TierConfig
from router.decision.features import estimate_tokens
from router.errors import FeedbackConflict, RequestLimitError
from router.schemas import ChatMessage, Feedback, TraceRecord
from router.traces.rows import prompt_hash


def feedback_model(body: Any) -> type[Feedback] | type[TraceRecord]:
    """Which schema validates `body`: a trace when it carries the call itself."""
    if isinstance(body, dict) and ("messages" in body or "prompt" in body):
        return TraceRecord
    return Feedback


def body_sha256(item: BaseModel) -> str:
    """Hash of the validated body, so key order and spacing never make two outcomes differ."""
    data = item.model_dump(mode="json", exclude_none=True)
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cost(
    settings: Settings, tier: str | None, reported: float | None, tokens_in: int | None,
    tokens_out: int | None, fallback: float | None, cached_tokens_in: int | None = None,
) -> tuple[float | None, int]:
    if reported is not None:
        return reported, 0
    if tier in settings.tier_names and tokens_in is not None:
        out = tokens_out if tokens_out is not None else settings.expected_output_tokens
        return settings.tier(tier).estimate_cost(tokens_in, out, cached_tokens_in or 0), 1
    return fallback, 1


def check_plausible(item: Feedback | TraceRecord, settings: Settings,
                    decision: dict[str, Any] | None) -> None:
    """Refuse (422, naming the field and the bound) a reported cost or token count beyond what
    the call could cost: its model's context window and prices, times ``limits.report_slack``.
    A report moves spend, budgets and token limits that other keys share, so it is believed only
    as far as the call was possible. A trace without a decision that reports a cost or tokens
    must name a configured model (or tier): nothing else bounds it."""
    tier = _reported_tier(item, settings, decision)
    given = [(f, getattr(item, f)) for f in ("cost_usd", "tokens_in", "tokens_out")
             if getattr(item, f) is not None]
    if not given:
        return
    if tier is None:
        raise RequestLimitError(
            "model", f"model {getattr(item, 'model', None)!r} is no configured tier's model: a "
            "trace that reports a cost or tokens must name one (or its tier), so that what it "
            f"reports can be bounded; configured: {settings.tier_names}",
            settings.tier_names)
    slack = settings.limits.report_slack
    most_tokens = int(tier.context_window * slack)
    most_usd = tier.context_window * max(tier.input_price_per_m, tier.output_price_per_m) / 1e6
    most_usd = round(most_usd * slack, 8)
    for field, value in given:
        bound: float = most_usd if field == "cost_usd" else most_tokens
        if value > bound:
            raise RequestLimitError(
                field, f"{field} {value:g} is more than a call of tier {tier.name!r} could "
                f"{'cost' if field == 'cost_usd' else 'use'}: at most {bound:g} (its context "
                f"window of {tier.context_window} tokens at its prices, times "
                f"limits.report_slack {slack:g})", bound)


def _reported_tier(item: Feedback | TraceRecord, settings: Settings,
                   decision: dict[str, Any] | None) -> TierConfig | None:
    """The tier whose prices bound a report: the model it names, else its decision's; a model
    of no configured tier on a routed call: the dearest tier (a fallback may reach any)."""
    if isinstance(item, TraceRecord) and decision is None:
        name = item.tier if item.tier in settings.tier_names else settings.tier_of_model(
            item.model)
        return settings.tier(name) if name is not None else None
    assert decision is not None
    model = getattr(item, "model_used", None) or (
        decision.get("requested_model") if decision.get("shadow") else decision.get("model"))
    name = settings.tier_of_model(model) if model else None
    if name is None and not decision.get("shadow") and decision.get("tier") in (
            settings.tier_names):
        name = decision["tier"]
    if name is None:
        return max(settings.tiers, key=lambda t: t.context_window * max(
            t.input_price_per_m, t.output_price_per_m))
    return settings.tier(name)


def decision_outcome(
    fb: Feedback, decision: dict[str, Any], settings: Settings, now: float | None = None
) -> dict[str, Any]:
    """The outcome row of feedback on a routed call; attribution lives on the decision row.
    A shadow decision was not followed: the model used is the request's own unless named."""
    shadow = bool(decision.get("shadow"))
    model = fb.model_used or (decision.get("requested_model") if shadow else decision["model"])
    # a shadow call on a model of no configured tier teaches no tier (never the router's pick)
    tier = settings.tier_of_model(model) if model else None
    if tier is None and not shadow:
        tier = decision["tier"]
    tokens_in = fb.tokens_in if fb.tokens_in is not None else decision.get("tokens_in")
    cost, estimated = _cost(settings, tier, fb.cost_usd, tokens_in, fb.tokens_out,
                            decision.get("estimated_cost_usd"),
                            fb.cached_tokens_in if fb.tokens_in is not None else None)
    return {
        "feedback_id": fb.decision_id, "decision_id": fb.decision_id,
        "received_at": time.time() if now is None else now, "body_sha256": body_sha256(fb),
        "model_used": model, "tier": tier, "quality": fb.label(), "cost_usd": cost,
        "cost_estimated": estimated, "tokens_in": fb.tokens_in, "tokens_out": fb.tokens_out,
        "latency_ms": fb.latency_ms, "error": fb.error, "fallback_used": int(fb.fallback_used),
        "extra": json.dumps({"attempts": [a.model_dump(exclude_none=True) for a in fb.attempts]})
        if fb.attempts else None,  # the failed links of a fallback chain (model health)
    }


# What a later report on the same decision may add to its stored outcome (see `completion`).
COMPLETABLE = ("quality", "tokens_in", "tokens_out", "latency_ms", "error")


def completion(stored: dict[str, Any], new: dict[str, Any], fb: Feedback,
               settings: Settings | None = None,
               decision: dict[str, Any] | None = None) -> dict[str, Any]:
    """The columns a second report on one decision adds to its stored outcome; empty when it
    says nothing new (a duplicate). Reports arrive from different places (the gateway knows
    tokens, cost and errors; a grader later knows the quality), so a report may add what the
    stored outcome lacks: a label after an outcome-only report, tokens after a label, a
    reported cost over an estimate. It never changes what is stored: a different value for a
    stored field is a `FeedbackConflict` naming it."""
    given = fb.model_fields_set
    added: dict[str, Any] = {}
    clash = []
    if "model_used" in given and new["model_used"] != stored["model_used"]:
        if _provider_reported(stored):
            clash.append("model_used")
        else:  # a label alone took the decision's model by default; the gateway knows better
            added.update(model_used=new["model_used"], tier=new["tier"])
    for column in COMPLETABLE:
        value = new[column]
        if value is None:
            continue
        if stored[column] is None:
            added[column] = value
        elif stored[column] != value:
            clash.append(column)
    if "cost_usd" in given:
        if stored["cost_estimated"]:
            added.update(cost_usd=new["cost_usd"], cost_estimated=0)
        elif stored["cost_usd"] != new["cost_usd"]:
            clash.append("cost_usd")
    elif stored["cost_estimated"] and settings is not None and decision is not None and (
            "tokens_in" in added or "tokens_out" in added or "tier" in added):  # re-estimated
        cost = _reestimate(stored, added, fb, settings, decision)
        if cost is not None and cost != stored["cost_usd"]:
            added["cost_usd"] = cost
    if new.get("extra") is not None:  # a fallback chain's failed links (`attempts`)
        if stored.get("extra") is None:
            added["extra"] = new["extra"]
        elif stored["extra"] != new["extra"]:
            clash.append("attempts")
    if new["fallback_used"] and not stored["fallback_used"]:
        added["fallback_used"] = 1
    elif "fallback_used" in given and stored["fallback_used"] and not new["fallback_used"]:
        clash.append("fallback_used")
    if clash:
        raise FeedbackConflict(
            f"a different outcome is already stored for {new['feedback_id']!r} "
            f"({', '.join(clash)} {'differs' if len(clash) == 1 else 'differ'}); a later report "
            "may add what the stored one lacks, never change it")
    return added


def _reestimate(stored: dict[str, Any], added: dict[str, Any], fb: Feedback,
                settings: Settings, decision: dict[str, Any]) -> float | None:
    """The estimated cost of a stored outcome once a later report added its tokens."""
    tokens_in = added.get("tokens_in", stored["tokens_in"])
    tokens_out = added.get("tokens_out", stored["tokens_out"])
    if tokens_in is None:
        tokens_in = decision.get("tokens_in")
    cached = fb.cached_tokens_in if "tokens_in" in added else None
    cost, _ = _cost(settings, added.get("tier", stored["tier"]), None, tokens_in, tokens_out,
                    None, cached)
    return cost


def _provider_reported(stored: dict[str, Any]) -> bool:
    """Did the stored outcome come with anything only the call itself knows (a reported cost,
    tokens, latency, an error, a fallback chain)? A grader's label alone does not."""
    return not stored["cost_estimated"] or any(
        stored.get(c) is not None for c in ("tokens_in", "tokens_out", "latency_ms", "error",
                                             "extra"))


def trace_outcome(
    tr: TraceRecord, settings: Settings, now: float | None = None, api_key: str | None = None
) -> dict[str, Any]:
    """The outcome row of a TRACES.md record; its text is kept per store.prompt_storage.
    `api_key`: the key that posted it (a trace without a decision is that key's alone)."""
    messages = tr.messages or [ChatMessage(role="user", content=tr.prompt)]
    tier = tr.tier or settings.tier_of_model(tr.model)
    tokens_in = tr.tokens_in if tr.tokens_in is not None else estimate_tokens(messages)
    cost, estimated = _cost(settings, tier, tr.cost_usd, tokens_in, tr.tokens_out, None)
    digest = body_sha256(tr)
    storage = settings.store.prompt_storage
    extra = {**(tr.model_extra or {}), "prompt_id": tr.prompt_id,
             "timestamp": tr.timestamp.isoformat() if tr.timestamp else None}
    return {
        "feedback_id": tr.decision_id or f"trace:{digest[:32]}", "decision_id": tr.decision_id,
        "received_at": time.time() if now is None else now, "body_sha256": digest,
        "model_used": tr.model, "tier": tier, "quality": tr.label(), "cost_usd": cost,
        "cost_estimated": estimated, "tokens_in": tr.tokens_in, "tokens_out": tr.tokens_out,
        "latency_ms": tr.latency_ms, "error": None, "fallback_used": 0, "task": tr.task,
        "run_id": tr.run_id, "role": tr.role, "step": tr.step, "user_id": tr.user,
        "propensity": tr.propensity, "source": tr.source,
        "prompt_hash": None if storage == "none" else prompt_hash(messages),
        "prompt": tr.prompt if storage == "full" else None,
        "messages": (json.dumps([m.model_dump(exclude_none=True) for m in tr.messages],
                                ensure_ascii=False)
                     if storage == "full" and tr.messages else None),
        "extra": json.dumps({k: v for k, v in extra.items() if v is not None}, default=str),
        "api_key": api_key if tr.decision_id is None else None,
    }
