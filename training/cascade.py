"""Offline evaluation of try-cheap-check-escalate against prompt-only routing and the map.

Every router here picks, per call, a *plan*: a chain of tiers, cheapest first, tried in order
until the call's check passes (an exact check: the answer's own label, e.g. MBPP's tests).
Prompt-only routing and the learned map are chains of one tier; always-cheapest-first is the
chain of every tier; check-aware routing's chain is the service's plan for a verifiable call
(training/cascade_replay.py fits the service's map and reads its plans). A chain
is charged every call it makes (the failed, wasted ones included), and realises the quality of
the last answer it got. All of it is pure numpy over (n, T) quality and cost tables, tiers
cheapest first, so the same functions run on any data set with every tier's outcome per prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Chain = tuple[int, ...]


@dataclass(frozen=True)
class Realised:
    """What a set of per-call chains realised: mean quality and cost, and the wasted calls."""

    quality: float
    cost: float
    wasted_cost: float
    wasted_calls: float  # expected, where the plan is a random draw (`mixed`)
    calls: float

    def share_of(self, strongest: Realised) -> tuple[float, float]:
        """(quality / strongest's, saving = 1 - cost / strongest's)."""
        return self.quality / strongest.quality, 1.0 - self.cost / strongest.cost


def run_chain(quality: np.ndarray, cost: np.ndarray, chain: Chain,
              passes: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per call: (realised quality, total cost, wasted cost, wasted calls) of `chain`: a tier
    whose answer passes the check ends the chain; a failed answer that is not the chain's last
    is escalated from (its cost wasted). `passes` (n, T): the check's result per answer (a weak
    check passes wrong answers too); None: an exact check (quality 1 passes)."""
    n = len(quality)
    done = np.zeros(n, dtype=bool)
    realised = np.zeros(n)
    total = np.zeros(n)
    wasted = np.zeros(n)
    wasted_calls = np.zeros(n, dtype=int)
    for position, tier in enumerate(chain):
        active = ~done
        total[active] += cost[active, tier]
        ok = quality[:, tier] >= 1.0 if passes is None else passes[:, tier].astype(bool)
        passed = active & ok
        last = position == len(chain) - 1
        realised[active] = quality[active, tier]
        if not last:
            failed = active & ~passed
            wasted[failed] += cost[failed, tier]
            wasted_calls[failed] += 1
        done |= passed
    return realised, total, wasted, wasted_calls


def realise(quality: np.ndarray, cost: np.ndarray, plan: Sequence[Chain],
            passes: np.ndarray | None = None) -> Realised:
    """Run each call's own chain (`plan[i]` for call i), with `run_chain`'s check."""
    q, c, w, k = (np.zeros(len(quality)) for _ in range(4))
    for chain in set(plan):
        rows = np.array([p == chain for p in plan])
        rq, rc, rw, rk = run_chain(quality[rows], cost[rows], chain,
                                   None if passes is None else passes[rows])
        q[rows], c[rows], w[rows], k[rows] = rq, rc, rw, rk
    return Realised(float(q.mean()), float(c.mean()), float(w.mean()), int(k.sum()),
                    int(len(quality) + k.sum()))


def mixed(parts: Sequence[tuple[Realised, float]]) -> Realised:
    """The expected point of a random draw among plans, each with its probability (the
    learned map's allowance sends a share of a category's calls to a cheaper tier)."""
    total = sum(w for _, w in parts)
    return Realised(*(sum(getattr(p, name) * w for p, w in parts) / total
                      for name in ("quality", "cost", "wasted_cost", "wasted_calls", "calls")))


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
