"""Try cheap, check, escalate: route a call, make it, run the caller's own check on the answer,
and on a failed check ask the router for a stronger tier (``escalate_from``), until an answer
passes or no stronger tier is allowed; report each answer's outcome on the way.

    done = router.complete(body, call=lambda d: llm(d.model, body), check=parses_as_json)
    done.response, done.passed, [d.tier for d in done.tried]

`check(response)` answers True (or None) for a pass, False for a failure (``check_failed``),
one of the escalation reasons as a string (``invalid_json``, ``tests_failed``, ...), any other
string (reason ``other``, the string as detail), or a `Verdict`. A passed answer is reported
with ``success=True, check_passed=True``: the check is the caller's acceptance test, and the
router learns how often each tier passes it. A failed one is escalated from (the router records
it as a failed check of its tier, once); when the router refuses to escalate (the strongest tier
failed, or the call's ceiling or ``max_cost_usd`` allows no stronger tier) the failure is
reported as ``success=False, check_passed=False`` and the last answer returned with
``passed=False``: what to do with it is the caller's call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tier_router_client._calls import RoutedCall, areport, report
from tier_router_client._core import ESCALATION_REASONS
from tier_router_client.aclient import AsyncRouterClient
from tier_router_client.client import RouterClient
from tier_router_client.errors import RouterRefused
from tier_router_client.types import Decision, Receipt

PASSED = {"success": True, "check_passed": True}  # what a passed answer's report says
FAILED = {"success": False, "check_passed": False}

__all__ = ["Answer", "Completed", "Verdict", "acomplete", "complete", "routed_call",
           "verdict_of"]


@dataclass(frozen=True)
class Verdict:
    """What the caller's check said of one answer."""

    passed: bool
    reason: str = "check_failed"
    detail: str | None = None


@dataclass(frozen=True)
class Answer:
    """What `call` may return instead of the bare response: the response the check reads,
    the /feedback outcome fields the call knows (tokens, cost, latency, model_used) and the
    answer's mean token log-probability, if the provider returned log-probabilities."""

    response: Any
    outcome: Mapping[str, Any] = field(default_factory=dict)
    logprob_mean: float | None = None


@dataclass(frozen=True)
class Completed:
    """The answer that passed (or the last one tried), its decision, and every decision tried
    in order (the failed, escalated-from ones first) with the receipt of each outcome."""

    response: Any
    decision: Decision
    passed: bool
    tried: tuple[Decision, ...]
    receipts: tuple[Receipt | None, ...]
    outcome: Mapping[str, Any] = field(default_factory=dict)  # the last answer's, as reported

    @property
    def escalations(self) -> int:
        return len(self.tried) - 1


def verdict_of(result: Any) -> Verdict:
    """A check's answer as a `Verdict` (see the module docstring)."""
    if isinstance(result, Verdict):
        return result
    if result is None or result is True:
        return Verdict(True)
    if result is False:
        return Verdict(False)
    if isinstance(result, str):
        if result in ESCALATION_REASONS:
            return Verdict(False, result)
        return Verdict(False, "other", result[:1000])
    raise TypeError(f"a check returns True, False, None, a reason string or a Verdict; got "
                    f"{type(result).__name__}")


def _answer(result: Any) -> Answer:
    return result if isinstance(result, Answer) else Answer(result)


def complete(router: RouterClient, body: Mapping[str, Any] | None = None, /, *,
             call: Callable[[Decision], Any], check: Callable[[Any], Any],
             **fields: Any) -> Completed:
    """Route (as a `verifiable` call: the router may plan a cheaper tier first), `call`,
    `check`, escalate on a failure, report (sync)."""
    fields = {"verifiable": True, **fields}
    decision = router.route(body, **fields)
    tried: list[Decision] = []
    receipts: list[Receipt | None] = []
    while True:
        answer = _answer(call(decision))
        verdict = verdict_of(check(answer.response))
        tried.append(decision)
        if verdict.passed or not decision.decision_id:  # a fail-open decision: nothing to ask
            label = PASSED if verdict.passed and decision.decision_id else {}
            receipts.append(report(router, decision, {**answer.outcome, **label}))
            return Completed(answer.response, decision, verdict.passed, tuple(tried),
                             tuple(receipts), answer.outcome)
        try:
            following = router.escalate(decision, body, reason=verdict.reason,
                                        logprob_mean=answer.logprob_mean,
                                        detail=verdict.detail, **fields)
        except RouterRefused as exc:
            if exc.status_code != 409:
                raise
            receipts.append(report(router, decision, {**answer.outcome, **FAILED}))
            return Completed(answer.response, decision, False, tuple(tried), tuple(receipts),
                             answer.outcome)
        receipts.append(report(router, decision, dict(answer.outcome))
                        if answer.outcome else None)
        decision = following


async def acomplete(router: AsyncRouterClient, body: Mapping[str, Any] | None = None, /, *,
                    call: Callable[[Decision], Any], check: Callable[[Any], Any],
                    **fields: Any) -> Completed:
    """`complete` for asyncio: `call` (and `check`, if it likes) may be coroutines."""
    fields = {"verifiable": True, **fields}
    decision = await router.route(body, **fields)
    tried: list[Decision] = []
    receipts: list[Receipt | None] = []
    while True:
        answer = _answer(await _maybe(call(decision)))
        verdict = verdict_of(await _maybe(check(answer.response)))
        tried.append(decision)
        if verdict.passed or not decision.decision_id:
            label = PASSED if verdict.passed and decision.decision_id else {}
            receipts.append(await areport(router, decision, {**answer.outcome, **label}))
            return Completed(answer.response, decision, verdict.passed, tuple(tried),
                             tuple(receipts), answer.outcome)
        try:
            following = await router.escalate(decision, body, reason=verdict.reason,
                                              logprob_mean=answer.logprob_mean,
                                              detail=verdict.detail, **fields)
        except RouterRefused as exc:
            if exc.status_code != 409:
                raise
            receipts.append(await areport(router, decision, {**answer.outcome, **FAILED}))
            return Completed(answer.response, decision, False, tuple(tried), tuple(receipts),
                             answer.outcome)
        receipts.append(await areport(router, decision, dict(answer.outcome))
                        if answer.outcome else None)
        decision = following


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def routed_call(done: Completed) -> RoutedCall:
    """A cascade's result in the shape of the SDK helpers' routed call."""
    model = done.outcome.get("model_used") or done.decision.model
    return RoutedCall(done.response, done.decision, str(model), done.receipts[-1],
                      passed=done.passed, tried=done.tried)
