"""What the health step of a decision (`policy.health_step`) reads, and its small helpers.

The step skips models whose circuit is open, moves off a tier that is down, and puts the
fastest model first for a latency-sensitive call. Pure, like the rest of the policy: it reads a
`HealthView`, a snapshot of the serving layer's `ModelHealth` (router/serving/model_health.py) taken
for the decision, with the one random number a half-open model's probe needs already drawn.
The order of the chain is kept: the first usable model of the chosen tier serves; skipped
models go to the end of the fallbacks (a last resort, never first). A tier with no usable model
moves the decision to the next stronger tier that can serve the call (reason
``health_upgrade``); if there is none, to the strongest usable weaker tier (reason
``degraded``). A forced tier, a fixed task rule, a task rule's floor, the caller's ceiling and
``max_cost_usd`` are never crossed for it: then `NoHealthyModel` (503) names the tier and when
the first circuit will be probed again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from router.config import TierConfig
from router.schemas import CircuitState


@dataclass(frozen=True)
class ModelState:
    """One model's health as the decision reads it (defaults: nothing known, closed)."""

    state: CircuitState = "closed"
    calls: int = 0
    errors: int = 0
    latency_calls: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    retry_at: float | None = None  # open: when probing starts (epoch seconds)
    why: str | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


CLOSED = ModelState()


@dataclass(frozen=True)
class HealthView:
    """Every known model's state at `at` (epoch seconds), and this decision's probe draw."""

    models: Mapping[str, ModelState] = field(default_factory=dict)
    at: float = 0.0
    probe_share: float = 0.0
    min_calls: int = 1  # latency samples before a model's latency is trusted
    probe: float = 1.0  # uniform [0, 1): below probe_share, a half-open model is probed

    def of(self, model: str) -> ModelState:
        return self.models.get(model, CLOSED)

    def usable(self, model: str) -> bool:
        state = self.of(model).state
        return state == "closed" or (state == "half_open" and self.probe < self.probe_share)


def skipped_why(view: HealthView, model: str) -> str:
    """'gpt-4.1-nano (circuit open: 5 of 5 calls failed ...; probed again in 12 s)'."""
    s = view.of(model)
    if s.state == "half_open":
        return f"{model} (circuit half-open: probed on {view.probe_share:g} of calls)"
    wait = "" if s.retry_at is None else f"; probed again in {max(0, s.retry_at - view.at):.0f} s"
    return f"{model} (circuit open: {s.why or 'too many failures'}{wait})"


def latency_order(models: list[str], view: HealthView) -> list[str]:
    """Lowest trusted median latency first (p95, then the configured order, break ties). A
    model with fewer than `min_calls` latency samples in the window goes before the measured
    ones, in the configured order: otherwise a model behind a healthy one would never be
    measured, and a latency-sensitive call would never learn that it is faster."""
    def key(item: tuple[int, str]) -> tuple[bool, float, float, int]:
        i, m = item
        s = view.of(m)
        if s.p50_ms is None or s.latency_calls < view.min_calls:
            return (False, 0.0, 0.0, i)
        return (True, s.p50_ms, s.p95_ms or 0.0, i)
    return [m for _, m in sorted(enumerate(models), key=key)]


def retry_after(view: HealthView, models: list[str]) -> int:
    """Seconds until the first of `models` is probed again (at least 1)."""
    times = [s.retry_at for s in (view.of(m) for m in models) if s.retry_at is not None]
    wait = min(times) - view.at if times else 1.0
    return max(1, math.ceil(wait))


def tier_down(view: HealthView, tier: TierConfig) -> bool:
    return not any(view.usable(m) for m in tier.models)
