"""Offline evaluation of try-cheap-check-escalate against prompt-only routing and the map.

Every router here picks, per call, a *plan*: a chain of tiers, cheapest first, tried in order
until the call's check passes (an exact check: the answer's own label, e.g. MBPP's tests).
Prompt-only routing and the per-category map are chains of one tier; always-cheapest-first is
the chain of every tier; check-aware routing learns, per category, which chain to use. A chain
is charged every call it makes (the failed, wasted ones included), and realises the quality of
the last answer it got. All of it is pure numpy over (n, T) quality and cost tables, tiers
cheapest first, so the same functions run on any data set with every tier's outcome per prompt.

The map's rule (simulated here as its issue states it): per category and tier, a Beta posterior
of the tier's pass rate; the call goes to the cheapest tier (the plan: the cheapest chain) whose
one-sided lower bound (90%) of quality relative to the strongest tier is at least the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

Chain = tuple[int, ...]


@dataclass(frozen=True)
class Realised:
    """What a set of per-call chains realised: mean quality and cost, and the wasted calls."""

    quality: float
    cost: float
    wasted_cost: float
    wasted_calls: int
    calls: int

    def share_of(self, strongest: Realised) -> tuple[float, float]:
        """(quality / strongest's, saving = 1 - cost / strongest's)."""
        return self.quality / strongest.quality, 1.0 - self.cost / strongest.cost


def chains(n_tiers: int) -> list[Chain]:
    """Every chain of tiers in increasing order (single tiers included)."""
    return [c for k in range(1, n_tiers + 1) for c in combinations(range(n_tiers), k)]


def run_chain(quality: np.ndarray, cost: np.ndarray, chain: Chain
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per call: (realised quality, total cost, wasted cost, wasted calls) of `chain` with an
    exact check: a tier whose answer passes (quality 1) ends the chain; a failed answer that
    is not the chain's last is escalated from (its cost wasted)."""
    n = len(quality)
    done = np.zeros(n, dtype=bool)
    realised = np.zeros(n)
    total = np.zeros(n)
    wasted = np.zeros(n)
    wasted_calls = np.zeros(n, dtype=int)
    for position, tier in enumerate(chain):
        active = ~done
        total[active] += cost[active, tier]
        passed = active & (quality[:, tier] >= 1.0)
        last = position == len(chain) - 1
        realised[active] = quality[active, tier]
        if not last:
            failed = active & ~passed
            wasted[failed] += cost[failed, tier]
            wasted_calls[failed] += 1
        done |= passed
    return realised, total, wasted, wasted_calls


def realise(quality: np.ndarray, cost: np.ndarray, plan: Sequence[Chain]) -> Realised:
    """Run each call's own chain (`plan[i]` for call i)."""
    q, c, w, k = (np.zeros(len(quality)) for _ in range(4))
    for chain in set(plan):
        rows = np.array([p == chain for p in plan])
        rq, rc, rw, rk = run_chain(quality[rows], cost[rows], chain)
        q[rows], c[rows], w[rows], k[rows] = rq, rc, rw, rk
    return Realised(float(q.mean()), float(c.mean()), float(w.mean()), int(k.sum()),
                    int(len(quality) + k.sum()))


def ratio_lower_bound(passes: float, n: int, strongest_passes: float, confidence: float = 0.9,
                      draws: int = 20000, seed: int = 0) -> float:
    """One-sided lower bound of (pass rate / the strongest tier's), from Beta(1 + passes,
    1 + fails) posteriors of both, by sampling."""
    rng = np.random.default_rng(seed)
    mine = rng.beta(1 + passes, 1 + n - passes, draws)
    best = rng.beta(1 + strongest_passes, 1 + n - strongest_passes, draws)
    return float(np.quantile(mine / best, 1 - confidence))


def map_chain(quality: np.ndarray, target: float = 0.95, confidence: float = 0.9) -> Chain:
    """The per-category map's pick from a category's outcomes (every tier's, per call): the
    cheapest tier whose lower bound of quality relative to the strongest is >= target."""
    n, n_tiers = quality.shape
    top = float(quality[:, -1].sum())
    for tier in range(n_tiers - 1):
        if ratio_lower_bound(float(quality[:, tier].sum()), n, top, confidence) >= target:
            return (tier,)
    return (n_tiers - 1,)


def check_aware_chain(quality: np.ndarray, cost: np.ndarray, target: float = 0.95,
                      confidence: float = 0.9, allowed: Sequence[Chain] | None = None,
                      exact_check: bool = True) -> Chain:
    """The check-aware plan for a category: of the safe chains, the one with the least
    expected cost, wasted calls included (the strongest tier alone when none is safe). Safe:
    with an exact check, a chain that ends on the strongest tier is at least as good as it on
    every call (an answer that passes is right; one that fails goes up); any other chain is
    safe when its lower bound of realised quality relative to the strongest tier's (the map's
    rule) is >= target."""
    n, n_tiers = quality.shape
    top = float(quality[:, -1].sum())
    best: tuple[float, Chain] = (float(cost[:, -1].mean()), (n_tiers - 1,))
    for chain in allowed or chains(n_tiers):
        realised, total, _, _ = run_chain(quality, cost, chain)
        safe = (exact_check and chain[-1] == n_tiers - 1) or ratio_lower_bound(
            float(realised.sum()), n, top, confidence) >= target
        if safe:
            best = min(best, (float(total.mean()), chain))
    return best[1]


def random_mixture(quality: np.ndarray, cost: np.ndarray, target: float = 0.95
                   ) -> tuple[float, float]:
    """(quality share, saving) of the cheapest random mixture of single tiers whose mean
    quality is target x the strongest tier's (two tiers mixed suffice for a linear program
    of one constraint)."""
    q, c = quality.mean(axis=0), cost.mean(axis=0)
    goal = target * q[-1]
    best = (1.0, 0.0)
    for i in range(len(q)):
        for j in range(len(q)):
            if q[i] >= goal:
                share, spend = q[i], c[i]
            elif q[j] > q[i] and q[j] >= goal:
                p = (goal - q[i]) / (q[j] - q[i])
                share, spend = goal, (1 - p) * c[i] + p * c[j]
            else:
                continue
            if 1 - spend / c[-1] > best[1]:
                best = (share / q[-1], 1 - spend / c[-1])
    return best
