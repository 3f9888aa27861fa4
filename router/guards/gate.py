"""The check before a decision: the key's requests and tokens per minute and every budget over
the call, and the `Admission` it answers with.

All are read (the request and the tokens charged) in one `Counters.take`, so with
``shared_state`` a call's limits cost one round trip to Redis before it is decided, and its
estimated cost one more write after (`BudgetTracker.add`). Each /route call is one request
against ``rate_per_minute``, each item of a batch too. A call is charged its estimated input
tokens plus its expected output: the request's own ``max_tokens`` / ``max_completion_tokens``
when it gives one, else the config's ``expected_output_tokens``. The two are separate parts of
the charge, each set to what `/feedback` reports (`correct`): an agent that reserves a large
output and uses little gets that output back, never input below what the router measured.
The admission (the decision id the charge is made under) goes to `route` and, when no decision
comes of it, to `release`, which gives the tokens back. ``tokens_per_minute`` means at most
that many in any 60 seconds (a sliding log, `router.guards.counters`). A call alone larger
than the limit could never pass: 422, naming the field; one that does not fit now: 429 with
the seconds until it would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from router.config import ApiKeyConfig
from router.decision.features import estimate_tokens
from router.errors import RateLimited, RequestLimitError
from router.guards.auth import key_named, limit_key, retry_seconds
from router.guards.budgets import BudgetTracker, refuse
from router.guards.counters import Counters, Window, part_name
from router.schemas import RouteRequest


@dataclass(frozen=True)
class Admission:
    """A /route call let through: the id its decision will carry, and whether a token charge
    was made under that id (`Gate.release` gives it back when no decision comes of it;
    `/feedback` corrects it by the decision id)."""

    decision_id: str
    api_key: str | None = None
    charged: bool = False

    @classmethod
    def new(cls, api_key: str | None = None) -> Admission:
        return cls(uuid.uuid4().hex, api_key)


@dataclass(frozen=True)
class Call:
    """What the gate needs to know of one /route call."""

    entry: str  # the decision id its charge is made under (feedback corrects it by that id)
    api_key: str | None
    role: str | None
    tokens_in: int  # estimated
    tokens_out: int  # reserved: the request's own output limit, else the config's expectation
    out_field: str | None  # the request field that set tokens_out, if it did
    in_field: str = "messages"
    charge: bool = True  # False for dry runs: checked, never counted
    requests: int = 0  # requests to count against the key's rate_per_minute (a /route call: 1)
    budgets: bool = True  # False: no budget is read (a shadow call's caller follows its model)
    metered: bool = True  # False: tokens per minute do not apply (a shadow call)


class Gate:
    """Tokens per minute per key and budgets, checked (and tokens charged) in one step."""

    def __init__(self, keys: Sequence[ApiKeyConfig], budgets: BudgetTracker | None,
                 counters: Counters, clock: Callable[[], float] = time.time):
        self.keys = keys
        self.budgets = budgets
        self.counters = counters
        self.clock = clock

    def admit_request(self, request: RouteRequest, expected_output_tokens: int,
                      prefix: str = "", shadow: bool = False) -> Admission:
        """`admit` for one /route call (every item of a batch is one): its request against the
        key's ``rate_per_minute`` and, unless it is a shadow call, its tokens and budgets, in one
        `Counters.take`; the admission names the decision id the charge is made under."""
        admission = Admission.new(request.api_key)
        entry = key_named(self.keys, request.api_key)
        limited = entry is not None and entry.rate_per_minute is not None
        metered = not shadow and entry is not None and entry.tokens_per_minute is not None
        budgeted = not shadow and bool(self.budgets and self.budgets.covering(
            request.role, request.api_key))
        if not (limited or metered or budgeted):
            return admission
        out_field = ("max_completion_tokens" if request.max_completion_tokens
                     else "max_tokens" if request.max_tokens else None)
        self.admit(Call(
            entry=admission.decision_id, api_key=request.api_key,
            role=None if shadow else request.role,
            tokens_in=estimate_tokens(request.chat(), request.tools) if metered else 0,
            tokens_out=request.expected_tokens_out or expected_output_tokens,
            out_field=out_field, in_field="messages" if request.messages else "prompt",
            charge=metered and not request.dry_run, requests=1 if limited else 0,
            budgets=budgeted, metered=not shadow), prefix)
        return replace(admission, charged=metered and not request.dry_run)

    def admit(self, call: Call, prefix: str = "") -> None:
        """Charge the call's tokens and read its budgets, or raise: 422 if the call alone is over
        the key's limit, 429 if it does not fit now, 402 if a budget over it is spent."""
        entry = key_named(self.keys, call.api_key)
        tokens: list[Window] = []
        requests: list[Window] = []
        if entry is not None and entry.rate_per_minute is not None and call.requests:
            requests.append(Window(limit_key("rpm", entry), entry.rate_per_minute,
                                   (call.requests,)))
        if entry is not None and entry.tokens_per_minute is not None and call.metered:
            self._fits_at_all(entry, call, prefix)  # a dry run is told too
        if entry is not None and entry.tokens_per_minute is not None and call.charge:
            tokens.append(Window(limit_key("tpm", entry), entry.tokens_per_minute,
                                 (call.tokens_in, call.tokens_out)))
        covering = (self.budgets.covering(call.role, call.api_key)
                    if self.budgets and call.budgets else [])
        windows = requests + tokens
        if not windows and not covering:
            return
        now = self.clock()
        day = self.budgets.clock() if self.budgets is not None else now  # periods: its clock
        reads = [self.budgets.key(b, day) for b in covering] if self.budgets else []
        taken = self.counters.take(windows, call.entry, now, reads)
        if taken.refused is not None:
            assert entry is not None
            raise self._refusal(entry, call, windows[taken.refused] in requests,
                                taken.used[taken.refused], retry_seconds(taken.retry_after))
        if self.budgets is not None and covering:
            try:
                refuse(self.budgets.judge(covering, taken.values, day))
            except Exception:
                self._refund(tokens, call.entry, now)  # the request itself was made: it counts
                raise

    def _refusal(self, entry: ApiKeyConfig, call: Call, per_request: bool, used: int,
                 retry: int) -> RateLimited:
        if per_request:
            return RateLimited(
                f"API key '{entry.name}' is over its limit of {entry.rate_per_minute} requests "
                f"per minute (rate_per_minute: at most that many in any 60 seconds; each item "
                f"of a batch is one); retry in {retry} s", retry_after=retry)
        return RateLimited(
            f"API key '{entry.name}' is over its limit of {entry.tokens_per_minute} tokens "
            f"per minute (tokens_per_minute): {used} used in the last 60 s and this call needs "
            f"{call.tokens_in + call.tokens_out}; retry in {retry} s", retry_after=retry)

    def release(self, admission: Admission) -> None:
        """Give back the tokens charged for an admitted call that got no decision (a 503: no
        healthy model, or the model failed without fail_open)."""
        entry = key_named(self.keys, admission.api_key)
        if not admission.charged or entry is None or entry.tokens_per_minute is None:
            return
        window = Window(limit_key("tpm", entry), entry.tokens_per_minute, (0, 0))
        self._refund([window], admission.decision_id, self.clock())

    def correct(self, api_key: str | None, entry: str, tokens_in: int | None,
                tokens_out: int | None) -> None:
        """Set the parts of a routed call's token charge to what its feedback reports (each
        one given); a charge already out of the 60-second window is left alone."""
        key = key_named(self.keys, api_key)
        if key is None or key.tokens_per_minute is None:
            return
        now = self.clock()
        for index, tokens in enumerate((tokens_in, tokens_out)):
            if tokens is not None:
                self.counters.amend(limit_key("tpm", key), part_name(entry, index), tokens, now)

    def _fits_at_all(self, entry: ApiKeyConfig, call: Call, prefix: str) -> None:
        limit = entry.tokens_per_minute
        assert limit is not None
        total = call.tokens_in + call.tokens_out
        if total <= limit:
            return
        field = call.out_field if call.out_field and call.tokens_in <= limit else call.in_field
        raise RequestLimitError(
            f"{prefix}{field}",
            f"this call needs {total} tokens ({call.tokens_in} estimated input + "
            f"{call.tokens_out} expected output), more than API key '{entry.name}' may use in "
            f"a minute (tokens_per_minute: {limit}); it could never be let through", limit)

    def _refund(self, windows: Sequence[Window], entry: str, now: float) -> None:
        """Give back the tokens of a call refused after its charge (a spent budget)."""
        for window in windows:
            for index in range(len(window.amounts)):
                self.counters.amend(window.key, part_name(entry, index), 0, now)

