"""Hand-computed checks of the evaluation maths. All data here are synthetic, made up by hand."""

import numpy as np
import pytest

from training.metrics import (
    OperatingPoint,
    apgr,
    bootstrap_ci,
    cost_at_quality,
    cpt,
    curve_arrays,
    expected_calibration_error,
    oracle_choice,
    pgr_curve,
    random_mixture_curve,
    reliability_table,
    routed_point,
    savings_at_quality_fraction,
)

# Synthetic two-tier data set: the weak tier fails prompts 2 and 3, the strong tier answers all.
WEAK_STRONG_QUALITY = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
WEAK_STRONG_COST = np.array([[0.1, 1.0]] * 4)


def test_routed_point_means_and_shares():
    # Synthetic: 3 prompts, 2 tiers; prompt 2's chosen tier was never observed.
    quality = np.array([[1.0, 0.0], [0.0, 0.5], [np.nan, 1.0]])
    cost = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 3.0]])
    point = routed_point(quality, cost, np.array([0, 1, 0]))
    assert point.mean_quality == pytest.approx((1.0 + 0.5) / 2)
    assert point.mean_cost == pytest.approx((0.1 + 2.0) / 2)
    np.testing.assert_allclose(point.share, [2 / 3, 1 / 3])
    assert point.n_unobserved == 1


def test_routed_point_rejects_out_of_range_choice():
    with pytest.raises(ValueError, match="The 'choice' parameter must be"):
        routed_point(WEAK_STRONG_QUALITY, WEAK_STRONG_COST, np.array([0, 1, 2, 0]))


def _perfect_router_curve() -> list[OperatingPoint]:
    # Sends to strong first exactly the prompts weak fails (2, 3), then the rest.
    order = [2, 3, 0, 1]
    curve = []
    for k in range(5):
        choice = np.zeros(4, dtype=int)
        choice[order[:k]] = 1
        curve.append(routed_point(WEAK_STRONG_QUALITY, WEAK_STRONG_COST, choice))
    return curve


def test_apgr_of_perfect_router_matches_hand_value():
    _, qualities, shares = curve_arrays(_perfect_router_curve())
    # q_weak = 0.5, q_strong = 1.0.  Shares 0, .25, .5, .75, 1 give quality .5, .75, 1, 1, 1,
    # so PGR = 0, .5, 1, 1, 1.  Trapezoids of width .25:
    # (0 + .5)/2*.25 + (.5 + 1)/2*.25 + 1*.25 + 1*.25 = .0625 + .1875 + .25 + .25 = 0.75
    np.testing.assert_allclose(shares, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(qualities, [0.5, 0.75, 1.0, 1.0, 1.0])
    assert apgr(shares, qualities, q_weak=0.5, q_strong=1.0) == pytest.approx(0.75)


def test_apgr_of_random_diagonal_is_one_half():
    # Synthetic: quality rises linearly from q_weak to q_strong, PGR(x) = x, area 1/2.
    shares = np.linspace(0, 1, 11)
    qualities = 0.4 + 0.5 * shares
    assert apgr(shares, qualities, q_weak=0.4, q_strong=0.9) == pytest.approx(0.5)


def test_apgr_adds_endpoints_and_averages_duplicates():
    # Only interior points at share .5, quality .8 and 1.0 (mean .9, PGR .8 with gap .5 -> 1).
    # Anchors (0, PGR 0) and (1, PGR 1) are added: .5*(0 + .8)/2 + .5*(.8 + 1)/2 = .2 + .45
    assert apgr([0.5, 0.5], [0.8, 1.0], q_weak=0.5, q_strong=1.0) == pytest.approx(0.65)


def test_apgr_and_cpt_are_nan_without_a_gap():
    assert np.isnan(apgr([0.0, 1.0], [0.7, 0.7], q_weak=0.7, q_strong=0.7))
    assert np.isnan(cpt([0.0, 1.0], [0.8, 0.6], q_weak=0.8, q_strong=0.6, target_pgr=0.5))
    assert np.isnan(pgr_curve([0.5, 0.6], q_weak=0.6, q_strong=0.5)).all()


def test_pgr_curve_values():
    np.testing.assert_allclose(pgr_curve([0.5, 0.75, 1.0], 0.5, 1.0), [0.0, 0.5, 1.0])


# Synthetic known curve: shares 0, .2, .5, 1 with PGR 0, .2, .8, 1 (q_weak .5, q_strong 1).
CPT_SHARES = [0.0, 0.2, 0.5, 1.0]
CPT_QUALITIES = [0.5, 0.6, 0.9, 1.0]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (0.5, 0.35),  # between (.2, .2) and (.5, .8): .2 + (.5 - .2)/.6 * .3 = .35
        (0.9, 0.75),  # between (.5, .8) and (1, 1):   .5 + (.9 - .8)/.2 * .5 = .75
        (0.2, 0.2),  # exactly a curve point
        (0.0, 0.0),
    ],
)
def test_cpt_interpolates_on_known_curve(target, expected):
    got = cpt(CPT_SHARES, CPT_QUALITIES, q_weak=0.5, q_strong=1.0, target_pgr=target)
    assert got == pytest.approx(expected)


def test_cpt_takes_first_crossing_of_a_non_monotone_curve():
    # Synthetic dip: PGR 0, .6, .4, 1 at shares 0, .3, .6, 1. PGR .5 is first reached on
    # the first segment: .5/.6 * .3 = .25 (np.interp on quality would be meaningless here).
    shares, qualities = [0.0, 0.3, 0.6, 1.0], [0.5, 0.8, 0.7, 1.0]
    assert cpt(shares, qualities, 0.5, 1.0, target_pgr=0.5) == pytest.approx(0.25)


def test_cpt_returns_one_when_never_reached_before_all_strong():
    # Measured all-strong point falls short of q_strong (e.g. noise): never reached -> 1.0.
    assert cpt([0.0, 1.0], [0.5, 0.9], q_weak=0.5, q_strong=1.0, target_pgr=0.9) == 1.0


def test_cpt_rejects_bad_target():
    with pytest.raises(ValueError, match=r"The 'target_pgr' parameter must be a float in \[0, 1\]"):
        cpt(CPT_SHARES, CPT_QUALITIES, 0.5, 1.0, target_pgr=50)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (0.65, 1.5),  # on (1, .5) -> (2, .8): 1 + (.15/.3) * 1 = 1.5
        (0.9, 6.0),  # on (2, .8) -> (10, 1): 2 + (.1/.2) * 8 = 6
        (0.4, 1.0),  # already met by the cheapest point
        (0.8, 2.0),
    ],
)
def test_cost_at_quality_interpolates_on_the_envelope(target, expected):
    # Synthetic curve; (4, .7) is dominated and must not be used.
    costs, qualities = [1.0, 2.0, 4.0, 10.0], [0.5, 0.8, 0.7, 1.0]
    assert cost_at_quality(costs, qualities, target) == pytest.approx(expected)


def test_cost_at_quality_uses_mixtures_below_the_chord():
    # (2, .6) lies below the chord (1, .5) -> (3, .9), whose value at 2 is .7.  Quality .6 is
    # cheaper by mixing the two ends: 1 + (.1/.4) * 2 = 1.5, not 2.0.
    assert cost_at_quality([1.0, 2.0, 3.0], [0.5, 0.6, 0.9], 0.6) == pytest.approx(1.5)


def test_cost_at_quality_is_nan_when_unreachable():
    assert np.isnan(cost_at_quality([1.0, 2.0], [0.5, 0.8], 0.81))


def test_savings_at_quality_fraction():
    # Target .9 * 1.0 = .9 costs 6 on this synthetic curve; 1 - 6/10 = .4 saved.
    got = savings_at_quality_fraction([1.0, 2.0, 10.0], [0.5, 0.8, 1.0], 10.0, 1.0, 0.9)
    assert got == pytest.approx(0.4)
    assert np.isnan(savings_at_quality_fraction([1.0, 2.0], [0.5, 0.8], 10.0, 1.0, 0.95))


def test_savings_rejects_bad_fraction():
    msg = r"The 'fraction' parameter must be a float in \(0, 1\]. Got 1.7 instead."
    with pytest.raises(ValueError, match=msg):
        savings_at_quality_fraction([1.0], [1.0], 1.0, 1.0, fraction=1.7)


def test_random_mixture_curve_is_the_convex_frontier():
    # Synthetic tiers (cost, quality): (1, .5), (2, .6), (3, .9), (5, .8).  (2, .6) is below
    # the chord (value .7 at cost 2) and (5, .8) is dearer and worse than (3, .9).
    costs, qualities = random_mixture_curve([0.5, 0.6, 0.9, 0.8], [1.0, 2.0, 3.0, 5.0], 5)
    np.testing.assert_allclose(costs, [1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_allclose(qualities, [0.5, 0.6, 0.7, 0.8, 0.9])


def test_oracle_choice():
    # Synthetic 3-tier data, costs rising with the tier.
    quality = np.array(
        [
            [1.0, 1.0, 1.0],  # cheapest tier already good -> 0
            [0.0, 1.0, 1.0],  # -> 1
            [0.0, np.nan, 1.0],  # unobserved middle never counts -> 2
            [0.2, 0.7, 0.7],  # none reaches 1.0: best is .7, tie -> cheaper tier 1
            [0.9, 0.3, 0.1],  # none reaches 1.0: best is tier 0
        ]
    )
    cost = np.tile([0.1, 1.0, 10.0], (5, 1))
    np.testing.assert_array_equal(oracle_choice(quality, cost), [0, 1, 2, 1, 0])
    np.testing.assert_array_equal(oracle_choice(quality, cost, threshold=0.6), [0, 1, 2, 1, 0])
    np.testing.assert_array_equal(oracle_choice(quality, cost, threshold=0.15), [0, 1, 2, 0, 0])


def test_oracle_choice_uses_per_prompt_cost_and_rejects_unobserved_rows():
    quality = np.array([[1.0, 1.0]])
    assert oracle_choice(quality, np.array([[2.0, 1.0]]))[0] == 1  # tier 1 is cheaper here
    with pytest.raises(ValueError, match="observed tier"):
        oracle_choice(np.array([[np.nan, np.nan]]), np.array([[1.0, 2.0]]))


def test_ece_is_zero_when_perfectly_calibrated():
    # Synthetic: p=.25 comes true 1 time in 4 and p=.75 3 times in 4, in their own bins.
    prob = np.array([0.25] * 4 + [0.75] * 4)
    outcome = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    assert expected_calibration_error(prob, outcome) == pytest.approx(0.0)
    # Fractional outcomes equal to the prediction are calibrated too.
    assert expected_calibration_error([0.3, 0.3], [0.3, 0.3]) == pytest.approx(0.0)


def test_ece_of_miscalibrated_input():
    # Synthetic: always .9, right half the time -> |.9 - .5| = .4.
    assert expected_calibration_error([0.9] * 4, [1, 0, 1, 0]) == pytest.approx(0.4)
    # Two bins weighted by count: 3 rows at .1 with outcome 1 (gap .9) and 1 row at .9 with
    # outcome 1 (gap .1) -> (3*.9 + 1*.1) / 4 = .7 (an unweighted mean would give .5).
    # The NaN rows are ignored.
    prob = [0.1, 0.1, 0.1, 0.9, np.nan, 0.5]
    outcome = [1.0, 1.0, 1.0, 1.0, 0.0, np.nan]
    assert expected_calibration_error(prob, outcome) == pytest.approx(0.7)


def test_reliability_table_bins():
    table = reliability_table([0.0, 0.05, 0.55, 1.0, 0.3], [0.0, 1.0, 1.0, 1.0, np.nan], 4)
    np.testing.assert_allclose(table.bin_centers, [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_array_equal(table.counts, [2, 0, 1, 1])  # p = 1.0 goes in the last bin
    np.testing.assert_allclose(table.mean_predicted[[0, 2, 3]], [0.025, 0.55, 1.0])
    np.testing.assert_allclose(table.mean_realised[[0, 2, 3]], [0.5, 1.0, 1.0])
    assert np.isnan(table.mean_predicted[1]) and np.isnan(table.mean_realised[1])


def _mean_quality(quality):
    return float(np.mean(quality))


def test_bootstrap_ci_is_deterministic_and_covers_the_estimate():
    rng = np.random.default_rng(123)
    quality = rng.uniform(0.0, 1.0, size=200)  # synthetic scores
    first = bootstrap_ci(_mean_quality, {"quality": quality}, n_boot=300, seed=7)
    again = bootstrap_ci(_mean_quality, {"quality": quality}, n_boot=300, seed=7)
    other = bootstrap_ci(_mean_quality, {"quality": quality}, n_boot=300, seed=8)
    assert first == again
    assert first != other
    low, high = first
    assert low < _mean_quality(quality) < high
    assert high - low < 0.2


def test_bootstrap_ci_keeps_rows_aligned_across_arrays():
    # If rows were resampled independently per array, a - b would not stay exactly zero.
    a = np.arange(50, dtype=float)

    def diff(a, b):
        return float(np.mean(a - b))

    assert bootstrap_ci(diff, {"a": a, "b": a.copy()}, n_boot=50) == (0.0, 0.0)


def test_bootstrap_ci_of_routed_apgr_runs_end_to_end():
    # Synthetic 2-tier data (40 prompts) with a perfect router resampled by prompt.
    quality = np.tile(WEAK_STRONG_QUALITY, (10, 1))
    cost = np.tile(WEAK_STRONG_COST, (10, 1))

    def stat(quality, cost):
        weak_fails = quality[:, 0] < quality[:, 1]
        order = np.concatenate([np.flatnonzero(weak_fails), np.flatnonzero(~weak_fails)])
        curve = []
        for k in range(len(order) + 1):
            choice = np.zeros(len(quality), dtype=int)
            choice[order[:k]] = 1
            curve.append(routed_point(quality, cost, choice))
        _, q, share = curve_arrays(curve)
        return apgr(share, q, q_weak=quality[:, 0].mean(), q_strong=quality[:, 1].mean())

    point = stat(quality, cost)
    low, high = bootstrap_ci(stat, {"quality": quality, "cost": cost}, n_boot=50, seed=0)
    assert low <= point <= high
