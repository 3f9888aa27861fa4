"""The offline cascade simulation on SYNTHETIC tables (made-up outcomes and prices): chains are
charged every call they make and realise their last answer; the plan picks are safe."""

from __future__ import annotations

import numpy as np
import pytest

from training.cascade import (
    chains,
    check_aware_chain,
    map_chain,
    random_mixture,
    realise,
    run_chain,
)

Q = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=float)
C = np.array([[1, 10, 100]] * 4, dtype=float)


def test_a_chain_stops_at_the_first_pass_and_pays_every_call_it_made() -> None:
    quality, cost, wasted, calls = run_chain(Q, C, (0, 1, 2))
    assert quality.tolist() == [1, 1, 1, 0]
    assert cost.tolist() == [1, 11, 111, 111]
    assert wasted.tolist() == [0, 1, 11, 11] and calls.tolist() == [0, 1, 2, 2]
    point = realise(Q, C, [(0, 1, 2)] * 4)
    assert point.quality == 0.75 and point.cost == pytest.approx(58.5)
    assert point.wasted_calls == 5 and point.calls == 9


def test_chains_are_every_increasing_sequence() -> None:
    assert len(chains(3)) == 7 and (0, 2) in chains(3) and (2, 1) not in chains(3)


def test_the_map_needs_evidence_and_check_aware_plans_stay_safe() -> None:
    rng = np.random.default_rng(0)
    n = 400
    large = (rng.random(n) < 0.7).astype(float)
    small = large * (rng.random(n) < 0.5)  # small solves half of what large solves
    quality = np.stack([small, large * (rng.random(n) < 0.9), large], axis=1)
    cost = np.tile([1.0, 5.0, 100.0], (n, 1))
    assert map_chain(quality, 0.95) == (2,)  # neither cheaper tier is close enough
    plan = check_aware_chain(quality, cost, 0.95)
    assert plan[-1] == 2 and plan[0] == 0  # cheap first, the strongest last
    point, top = realise(quality, cost, [plan] * n), realise(quality, cost, [(2,)] * n)
    assert point.quality >= top.quality and point.cost < 0.7 * top.cost
    weak = check_aware_chain(quality, cost, 0.95, exact_check=False)
    assert weak == (2,) or realise(quality, cost, [weak] * n).quality >= 0.95 * top.quality


def test_a_random_mixture_reaches_the_target_at_least_cost() -> None:
    quality = np.array([[0.5, 1.0]] * 10)
    cost = np.array([[1.0, 11.0]] * 10)
    share, saving = random_mixture(quality, cost, 0.9)
    assert share == pytest.approx(0.9) and saving == pytest.approx(1 - 9.0 / 11.0)
