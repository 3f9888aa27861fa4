"""The offline cascade evaluation on SYNTHETIC tables (made-up outcomes and prices): chains are
charged every call they make and realise their last answer; the service's map and plans, fitted
from the replayed outcomes, pick them."""

from __future__ import annotations

import numpy as np
import pytest

from training.cascade import Realised, mixed, random_mixture, realise, run_chain
from training.cascade_replay import check_aware_plans, map_plans, replayed_map

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


def test_the_services_map_keeps_large_and_its_plan_tries_cheap_tiers_first() -> None:
    """Replayed through the service's own map and plan code: neither cheaper tier is close
    enough to large for the map alone; with an exact check the plan tries both first, and
    realises at least large's quality at a fraction of its cost."""
    rng = np.random.default_rng(0)
    n = 400
    large = (rng.random(n) < 0.7).astype(float)
    small = large * (rng.random(n) < 0.5)  # small solves half of what large solves
    quality = np.stack([small, large * (rng.random(n) < 0.9), large], axis=1)
    cost = np.tile([1.0, 5.0, 100.0], (n, 1))
    learned, table = replayed_map(quality, cost)
    mapped = map_plans(learned, table, 0.95)
    assert mapped[0][0] == (2,) and (len(mapped) == 1 or mapped[1][1] < 0.5)  # mostly large
    assert check_aware_plans(learned, table, 0.95) == [((0, 1, 2), 1.0)]
    plan = (0, 1, 2)
    point, top = realise(quality, cost, [plan] * n), realise(quality, cost, [(2,)] * n)
    assert point.quality >= top.quality and point.cost < 0.7 * top.cost


def test_a_cheap_tier_as_good_as_large_is_the_maps_own_pick() -> None:
    rng = np.random.default_rng(1)
    n = 400
    good = (rng.random(n) < 0.9).astype(float)
    quality = np.stack([good * (rng.random(n) < 0.3), good, good], axis=1)
    cost = np.tile([1.0, 5.0, 100.0], (n, 1))
    learned, table = replayed_map(quality, cost)
    (mostly, medium), *rest = map_plans(learned, table, 0.95)  # medium is large's equal
    assert mostly == (1,) and medium > 0.9  # (the allowance may send a sliver to small)
    assert all(chain[-2:] == (1, 2) for chain, _ in check_aware_plans(learned, table, 0.95))


def test_a_weak_check_keeps_a_wrong_answer_that_passes() -> None:
    passes = np.ones_like(Q)  # a format check: every answer passes
    quality, cost, wasted, calls = run_chain(Q, C, (0, 1, 2), passes)
    assert quality.tolist() == [1, 0, 0, 0] and cost.tolist() == [1, 1, 1, 1]
    assert wasted.tolist() == [0, 0, 0, 0] and calls.tolist() == [0, 0, 0, 0]


def test_the_plan_does_not_trust_a_check_that_passes_wrong_answers() -> None:
    """Replayed: small is right 40% of the time and its every answer passes the check."""
    rng = np.random.default_rng(2)
    n = 400
    quality = np.stack([(rng.random(n) < 0.4), (rng.random(n) < 0.6), np.ones(n)],
                       axis=1).astype(float)
    cost = np.tile([1.0, 5.0, 100.0], (n, 1))
    learned, table = replayed_map(quality, cost, passes=np.ones_like(quality))
    firsts = [(chain[0], w) for chain, w in check_aware_plans(learned, table, 0.95)]
    assert firsts == [(chain[0], w) for chain, w in map_plans(learned, table, 0.95)]


def test_a_draw_among_plans_realises_their_weighted_mean() -> None:
    a, b = Realised(1.0, 10.0, 0.0, 0, 4), Realised(0.5, 2.0, 1.0, 2, 6)
    point = mixed([(a, 0.75), (b, 0.25)])
    assert point.quality == pytest.approx(0.875) and point.cost == pytest.approx(8.0)
    assert point.wasted_calls == pytest.approx(0.5) and point.calls == pytest.approx(4.5)


def test_a_random_mixture_reaches_the_target_at_least_cost() -> None:
    quality = np.array([[0.5, 1.0]] * 10)
    cost = np.array([[1.0, 11.0]] * 10)
    share, saving = random_mixture(quality, cost, 0.9)
    assert share == pytest.approx(0.9) and saving == pytest.approx(1 - 9.0 / 11.0)
