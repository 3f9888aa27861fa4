"""The gate before a decision: tokens per minute and budgets, in one step, all or nothing."""

from __future__ import annotations

import pytest

from router.config import ApiKeyConfig, BudgetConfig
from router.errors import BudgetExhausted, RateLimited, RequestLimitError
from router.guards.auth import hash_key, limit_key
from router.guards.budgets import BudgetTracker
from router.guards.counters import LocalCounters
from router.guards.gate import Call, Gate
from router.schemas import RouteRequest

KEY = ApiKeyConfig(name="a", sha256=hash_key("s"), scopes=["route"], tokens_per_minute=1000)


def call(entry: str, tokens_in: int = 100, tokens_out: int = 100, **more: object) -> Call:
    return Call(entry=entry, api_key="a", role="planner", tokens_in=tokens_in,
                tokens_out=tokens_out, out_field="max_tokens", **more)  # type: ignore[arg-type]


def test_a_spent_budget_refuses_and_gives_the_tokens_back() -> None:
    counters, now = LocalCounters(), [50.0]
    budgets = BudgetTracker([BudgetConfig(name="p", role="planner", limit_usd=1)],
                            counters=counters)
    gate = Gate([KEY], budgets, counters, clock=lambda: now[0])
    gate.admit(call("d1"))
    budgets.add("planner", 1.0)
    with pytest.raises(BudgetExhausted, match="budget 'p' is spent"):
        gate.admit(call("d2", 300, 300))
    assert counters.used(limit_key("tpm", KEY), now[0]) == 200  # d2's 600 were given back


def test_the_field_a_too_large_call_is_told_about() -> None:
    gate = Gate([KEY], None, LocalCounters())
    with pytest.raises(RequestLimitError) as err:
        gate.admit(call("d", 400, 700), prefix="requests.2.")
    assert err.value.field == "requests.2.max_tokens" and err.value.limit == 1000
    with pytest.raises(RequestLimitError) as err:
        gate.admit(call("d", 1200, 1))
    assert err.value.field == "messages"
    gate.admit(call("d", 500, 500))  # exactly the limit: fits
    with pytest.raises(RateLimited) as limited:
        gate.admit(call("e", 1, 0))
    assert limited.value.retry_after == 60


def test_keys_without_a_token_limit_and_calls_without_budgets_cost_nothing() -> None:
    class Refusing(LocalCounters):
        def take(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            raise AssertionError("no counter should be touched")

    plain = ApiKeyConfig(name="a", sha256=hash_key("s"), scopes=["route"])
    Gate([plain], BudgetTracker([]), Refusing()).admit(call("d", 10**6, 10**6))


def test_requests_and_tokens_are_taken_in_one_step_and_release_gives_back_tokens_only() -> None:
    limited = ApiKeyConfig(name="a", sha256=hash_key("s"), scopes=["route"],
                           tokens_per_minute=1000, rate_per_minute=2)
    takes: list[int] = []

    class Counting(LocalCounters):
        def take(self, windows, entry, now, reads=()):  # type: ignore[no-untyped-def]
            takes.append(len(windows))
            return super().take(windows, entry, now, reads)

    counters, now = Counting(), 10.0
    gate = Gate([limited], None, counters, clock=lambda: now)
    request = RouteRequest(prompt="hello there", max_tokens=100).attribute_to("a")
    first = gate.admit_request(request, 400)
    assert takes == [2] and first.charged  # one take: the request and the tokens
    gate.release(first)
    assert counters.used(limit_key("tpm", limited), now) == 0
    assert counters.used(limit_key("rpm", limited), now) == 1  # the request was made
    gate.admit_request(request, 400)
    with pytest.raises(RateLimited, match="rate_per_minute"):
        gate.admit_request(request, 400)
    with pytest.raises(RateLimited, match="rate_per_minute"):  # a shadow call is a request
        gate.admit_request(request, 400, shadow=True)
