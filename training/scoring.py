"""A model's decisions offline, through the service's own path: scores, costs, the policy.

Scores with columns in the config's tier order, the cost of every call on every tier at the
config's prices, and the tier `router.decision.policy.decide` picks for every call at a knob:
the steps `/route` takes, so `training.evaluate` (sweeping ``quality_target`` over `TARGETS`)
and `training.traffic.compare` (at each logged call's knob) measure what the service would do,
task rules and context limits included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router.config import Settings
from router.decision.choice import CallFacts, TierTable
from router.decision.features import CallView
from router.decision.policy import decide

TARGETS = np.round(np.linspace(0.0, 1.0, 101), 2)


def tier_costs(tokens_in: Sequence[int], settings: Settings) -> np.ndarray:
    """(n, T) estimated cost of each call on each tier at the config's (today's) prices."""
    out = settings.expected_output_tokens
    return np.array([[t.estimate_cost(int(n), out) for t in settings.tiers] for n in tokens_in])


def view_facts(
    views: Sequence[CallView], tasks: Sequence[str | None], settings: Settings
) -> list[CallFacts]:
    """What the policy knows of each call that has only a view and maybe a task (no tools)."""
    return [CallFacts(tokens_in=v.tokens_in, expected_tokens_out=settings.expected_output_tokens,
                      task=t if isinstance(t, str) else None)
            for v, t in zip(views, tasks, strict=True)]


def decide_tiers(
    scores: np.ndarray, facts: Sequence[CallFacts], targets: np.ndarray, settings: Settings
) -> np.ndarray:
    """(K, n) index of the tier `decide` picks for call j at knob ``targets[k, j]``.

    `scores` is (n, T) in the config's tier order; `targets` is (K, n): one row per knob
    setting, one column per call.
    """
    names = settings.tier_names
    index = {name: i for i, name in enumerate(names)}
    targets = np.asarray(targets, dtype=float)
    if targets.ndim != 2 or targets.shape[1] != len(facts):
        raise ValueError(f"The 'targets' parameter must have shape (K, {len(facts)}). "
                         f"Got {targets.shape} instead.")
    out = np.empty(targets.shape, dtype=np.intp)
    table = TierTable.of(settings)
    for j, (row, fact) in enumerate(zip(scores, facts, strict=True)):
        named = dict(zip(names, (float(s) for s in row), strict=True))
        for k in range(targets.shape[0]):
            choice = decide(named, table, float(targets[k, j]), fact)
            out[k, j] = index[choice.tier]
    return out


def policy_choices(
    scores: np.ndarray,
    views: Sequence[CallView],
    tasks: Sequence[str | None],
    settings: Settings,
    targets: np.ndarray = TARGETS,
) -> np.ndarray:
    """(len(targets), n) tier index `decide` picks per call at every knob of the sweep."""
    grid = np.broadcast_to(np.asarray(targets, dtype=float)[:, None], (len(targets), len(views)))
    return decide_tiers(scores, view_facts(views, tasks, settings), grid, settings)
