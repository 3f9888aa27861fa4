"""Agent runs: each live run's spend and model, its cap, and who may post a decision's outcome.

A run is the calls that carry one ``run_id`` under one API key (two keys' ``run-1`` are two
runs: one team's loop cannot spend another's cap). Its state, `RunView`, lives in a `RunSpend`
with a narrow interface, so a shared store (Redis: one hash per run, ``HINCRBYFLOAT`` and a TTL
of ``runs.expire_after_s``) can stand in for the in-process `LocalRunSpend`:

* ``add(run, usd, tier, model)``: a decision's estimated cost and where it went; the new view.
* ``correct(run, usd)``: feedback's reported cost minus the estimate (ignored for a gone run).
* ``get(run)``: the view, or None for a run never seen or idle past ``expire_after_s``.
* ``expire()``: forget idle runs; how many.

A run's cap is the tightest of the request's ``max_run_cost_usd`` and the config's (``runs:``
for every run, by role, by key): the operator's caps can be tightened by a caller, never
loosened. It is checked before each decision; once the spend reaches it, 402.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from router.config import RunsConfig
from router.errors import Forbidden, RunCeilingReached
from router.guards.auth import Principal
from router.schemas import RouteRequest, RunKey

MAX_RUNS = 200_000  # memory bound of the in-process state (~200 bytes a run)


def run_key(api_key: str | None, run_id: str) -> RunKey:
    return (api_key or "", run_id)


@dataclass(frozen=True)
class RunView:
    """What the router knows of a live run: spend so far and the model of its last call."""

    spend_usd: float
    calls: int
    tier: str | None
    model: str | None
    started_at: float
    last_call_at: float


class RunSpend(Protocol):
    """The run state a decision reads and writes (in-process here; shared later)."""

    def add(self, run: RunKey, usd: float, tier: str | None, model: str | None) -> RunView: ...

    def correct(self, run: RunKey, usd: float) -> None: ...

    def get(self, run: RunKey) -> RunView | None: ...

    def expire(self) -> int: ...


class LocalRunSpend:
    """`RunSpend` in this process: thread-safe, runs kept in order of their last call, so
    expiring is popping the idle ones off the front."""

    def __init__(self, expire_after_s: float, clock: Callable[[], float] = time.time,
                 max_runs: int = MAX_RUNS):
        self.expire_after_s = expire_after_s
        self.clock = clock
        self.max_runs = max_runs
        self._runs: OrderedDict[RunKey, RunView] = OrderedDict()
        self._lock = threading.Lock()

    def configure(self, config: RunsConfig) -> None:
        self.expire_after_s = config.expire_after_s

    def add(self, run: RunKey, usd: float, tier: str | None, model: str | None) -> RunView:
        now = self.clock()
        with self._lock:
            self._expire(now)
            old = self._runs.pop(run, None)
            if old is None:
                view = RunView(max(usd, 0.0), 1, tier, model, now, now)
            else:
                view = RunView(max(old.spend_usd + usd, 0.0), old.calls + 1, tier, model,
                               old.started_at, now)
            self._runs[run] = view
            while len(self._runs) > self.max_runs:  # bounded: the longest idle goes first
                self._runs.popitem(last=False)
            return view

    def correct(self, run: RunKey, usd: float) -> None:
        with self._lock:
            old = self._runs.get(run)
            if old is not None and usd != 0:
                self._runs[run] = replace(old, spend_usd=max(old.spend_usd + usd, 0.0))

    def get(self, run: RunKey) -> RunView | None:
        with self._lock:
            view = self._runs.get(run)
        if view is None or self.clock() - view.last_call_at > self.expire_after_s:
            return None
        return view

    def expire(self) -> int:
        with self._lock:
            return self._expire(self.clock())

    def _expire(self, now: float) -> int:
        edge, dropped = now - self.expire_after_s, 0
        while self._runs:
            run, view = next(iter(self._runs.items()))
            if view.last_call_at >= edge:
                break
            del self._runs[run]
            dropped += 1
        return dropped

    def load(self, totals: Mapping[RunKey, Mapping[str, Any]]) -> int:
        """Put back runs read from the trace store (`RunView`'s fields by run), so a restart
        keeps live runs' spend and models; a run this process already knows keeps its view."""
        views = {run: RunView(**fields) for run, fields in totals.items()}
        with self._lock:
            merged = {**views, **self._runs}
            self._runs = OrderedDict(sorted(merged.items(), key=lambda i: i[1].last_call_at))
            self._expire(self.clock())
            return len(self._runs)

    def __len__(self) -> int:
        return len(self._runs)


@dataclass(frozen=True)
class RunCap:
    usd: float
    source: str  # which setting set it, for the 402's message


def run_cap(request: RouteRequest, config: RunsConfig) -> RunCap | None:
    """The tightest cap that holds the request's run, or None."""
    caps = []
    if request.max_run_cost_usd is not None:
        caps.append(RunCap(request.max_run_cost_usd, "the request's max_run_cost_usd"))
    if config.max_cost_usd is not None:
        caps.append(RunCap(config.max_cost_usd, "runs.max_cost_usd"))
    if request.role is not None and request.role in config.by_role:
        caps.append(RunCap(config.by_role[request.role], f"runs.by_role.{request.role}"))
    if request.api_key is not None and request.api_key in config.by_key:
        caps.append(RunCap(config.by_key[request.api_key], f"runs.by_key.{request.api_key}"))
    return min(caps, key=lambda c: c.usd) if caps else None


def check_run(runs: RunSpend, request: RouteRequest, config: RunsConfig) -> None:
    """Raise RunCeilingReached (-> 402) when the request's run has spent its cap."""
    if request.run_id is None:
        return
    cap = run_cap(request, config)
    if cap is None:
        return
    view = runs.get(run_key(request.api_key, request.run_id))
    if view is not None and view.spend_usd >= cap.usd:
        raise RunCeilingReached(request.run_id, round(view.spend_usd, 8), cap.usd, cap.source)


def check_owner(decision: Mapping[str, Any], caller: Principal) -> None:
    """An outcome moves its decision's spend, budgets and learning: only the key that made the
    decision, or an admin key, may post it (Forbidden -> 403). An open service checks nothing."""
    if caller.anonymous or "admin" in caller.scopes:
        return
    owner = decision.get("api_key")
    if owner == caller.name:
        return
    made = "without an API key" if owner is None else "with another API key"
    raise Forbidden(
        f"decision {decision.get('decision_id')!r} was made {made}: only the key that made it "
        f"or an admin key may post its outcome, not '{caller.name}'"
    )
