"""The off-policy estimators' arithmetic, on synthetic logs (made-up contexts, labels and
propensities with a known answer, not measured data): unbiased where the log overlaps the
target, intervals that cover, and honest where it does not (propensity 1 elsewhere, no
overlap, nothing logged)."""

from __future__ import annotations

import numpy as np
import pytest

from router.decision.off_policy import Logged, columns, estimate, figures, rank_groups

# Two tiers (cheap, strongest) and two kinds of call with known success rates and costs.
SUCCESS = np.array([[0.60, 0.95],   # kind 0: the cheap tier is much worse
                    [0.90, 0.95]])  # kind 1: nearly as good
COST = np.array([1.0, 10.0])
LOGGING_TOP = np.array([0.7, 0.4])  # the logging policy's P(strongest) per kind
TARGET = np.array([[0.0, 1.0],      # the target: kind 0 to the strongest,
                   [0.8, 0.2]])     # kind 1 mostly cheap (a split)


def true_ratios() -> tuple[float, float]:
    """The target's expected quality and cost over always-strongest's (kinds equally likely)."""
    quality = np.mean(np.sum(TARGET * SUCCESS, axis=1)) / np.mean(SUCCESS[:, 1])
    return float(quality), float(np.mean(TARGET @ COST) / COST[1])


def synthetic_log(n: int, seed: int, direct: float | None = 0.5) -> Logged:
    """n calls logged by the randomised policy; `direct`: a deliberately wrong direct model
    (one value for every tier), None: the true success rates."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, n)
    top = rng.random(n) < LOGGING_TOP[kind]
    tier = top.astype(np.int64)
    propensity = np.where(top, LOGGING_TOP[kind], 1 - LOGGING_TOP[kind])
    quality = (rng.random(n) < SUCCESS[kind, tier]).astype(float)
    predicted = (np.full((n, 2), direct) if direct is not None else SUCCESS[kind])
    return Logged(tier=tier, propensity=propensity, quality=quality, cost=COST[tier],
                  target=TARGET[kind], predicted_quality=predicted,
                  predicted_cost=np.tile(COST, (n, 1)))


def test_every_estimator_is_unbiased_where_the_log_overlaps_the_target() -> None:
    quality, cost = true_ratios()
    runs = [estimate(synthetic_log(1000, seed), resamples=0)[0] for seed in range(200)]
    for name in ("ips", "snips", "dr"):
        q = np.mean([r.quality[name].value for r in runs])
        c = np.mean([r.cost[name].value for r in runs])
        assert q == pytest.approx(quality, abs=0.006), name
        assert c == pytest.approx(cost, abs=0.006), name
    assert all(r.overlap == pytest.approx(1.0, abs=0.15) for r in runs)


def test_the_intervals_cover_the_true_ratio_about_as_often_as_they_say() -> None:
    quality, _ = true_ratios()
    runs = [estimate(synthetic_log(800, seed), resamples=200, level=0.9, seed=seed)[0]
            for seed in range(60)]
    for name in ("ips", "snips", "dr"):
        covered = np.mean([r.quality[name].low <= quality <= r.quality[name].high
                           for r in runs])
        assert 0.75 <= covered <= 1.0, (name, covered)


def test_a_right_direct_model_makes_dr_tighter_than_ips() -> None:
    right = [estimate(synthetic_log(500, s, direct=None), resamples=0)[0] for s in range(100)]
    spread_dr = np.std([r.quality["dr"].value for r in right])
    spread_ips = np.std([r.quality["ips"].value for r in right])
    assert spread_dr < 0.7 * spread_ips


def test_calls_logged_with_propensity_1_to_another_tier_carry_no_weight_and_dr_uses_its_model(
) -> None:
    # every call logged on the strongest tier, certainly; the target always takes the cheap one
    n = 50
    logged = Logged(tier=np.ones(n, dtype=np.int64), propensity=np.ones(n),
                    quality=np.ones(n), cost=np.full(n, 10.0),
                    target=np.tile([1.0, 0.0], (n, 1)),
                    predicted_quality=np.tile([0.8, 0.9], (n, 1)),
                    predicted_cost=np.tile([1.0, 10.0], (n, 1)))
    x = columns(logged)
    point = figures(x.sum(axis=0))
    assert point["overlap"] == 0.0 and np.isnan(point["effective"])
    assert point["map_quality"] == pytest.approx(0.8)  # the direct model alone
    assert point["strongest_quality"] == pytest.approx(1.0)  # seen: the label corrects 0.9
    overall, _ = estimate(logged, resamples=20)
    assert not overall.enough and overall.effective_calls == 0.0 and overall.unsupported == 1.0
    assert "not enough evidence" in (overall.note or "")
    assert all(i.value is None for i in (*overall.quality.values(), *overall.cost.values()))
    assert overall.served_quality == 1.0 and overall.served_cost_usd == 10.0


def test_half_the_choices_unsupported_withholds_ips_and_snips_and_dr_says_what_it_rests_on(
) -> None:
    # half the calls logged cheap with certainty where the target takes the strongest: no
    # support; the other half logged at random (enough evidence on their own)
    n = 400
    rng = np.random.default_rng(0)
    unsupported = np.arange(n) < n // 2
    tier = np.where(unsupported, 0, rng.integers(0, 2, n))
    logged = Logged(tier=tier, propensity=np.where(unsupported, 1.0, 0.5),
                    quality=rng.random(n), cost=np.ones(n),
                    target=np.tile([0.0, 1.0], (n, 1)),
                    predicted_quality=np.full((n, 2), 0.5), predicted_cost=np.ones((n, 2)))
    overall, _ = estimate(logged, resamples=50)
    assert overall.overlap == pytest.approx(0.5, abs=0.08)
    assert overall.unsupported == 0.5 and overall.enough
    assert overall.quality["ips"].value is None and overall.cost["snips"].value is None
    assert overall.quality["dr"].value is not None and overall.quality["dr"].low is not None
    assert "no overlap on 50% of the map's choices" in (overall.note or "")
    tolerant, _ = estimate(logged, resamples=0, max_unsupported=0.6)
    assert tolerant.quality["ips"].value is not None and tolerant.note is None


def test_an_empty_log_says_so() -> None:
    empty = Logged(tier=np.zeros(0, dtype=np.int64), propensity=np.zeros(0),
                   quality=np.zeros(0), cost=np.zeros(0), target=np.zeros((0, 2)),
                   predicted_quality=np.zeros((0, 2)), predicted_cost=np.zeros((0, 2)))
    overall, groups = estimate(empty, np.zeros(0, dtype=np.int64), 1, resamples=50)
    assert overall.calls == 0 and not overall.enough and overall.note == "no labelled decisions"
    assert overall.served_quality is None and groups[0].calls == 0


def test_a_group_is_estimated_as_if_alone_and_the_rest_count_overall_only() -> None:
    logged = synthetic_log(3000, 1)
    kinds = (logged.target[:, 0] > 0).astype(np.int64)  # kind 1 is where the target splits
    groups = np.where(kinds == 1, 0, -1)  # only kind 1 is a reported group
    overall, (alone,) = estimate(logged, groups, 1, resamples=30, seed=4)
    mask = kinds == 1
    subset = Logged(*(np.asarray(getattr(logged, f))[mask] for f in (
        "tier", "propensity", "quality", "cost", "target", "predicted_quality",
        "predicted_cost")))
    direct, _ = estimate(subset, resamples=0)
    assert alone.calls == int(mask.sum()) and overall.calls == 3000
    assert alone.quality["dr"].value == direct.quality["dr"].value
    assert alone.quality["dr"].low is not None and overall.quality["dr"].low is not None


def test_bad_inputs_are_refused_with_the_parameter_named() -> None:
    with pytest.raises(ValueError, match="'propensity' parameter must be in"):
        Logged(tier=np.zeros(1, dtype=np.int64), propensity=np.zeros(1), quality=np.ones(1),
               cost=np.ones(1), target=np.ones((1, 1)), predicted_quality=np.ones((1, 1)),
               predicted_cost=np.ones((1, 1)))
    with pytest.raises(ValueError, match="'target' parameter must have shape"):
        Logged(tier=np.zeros(2, dtype=np.int64), propensity=np.ones(2), quality=np.ones(2),
               cost=np.ones(2), target=np.ones((1, 2)), predicted_quality=np.ones((2, 2)),
               predicted_cost=np.ones((2, 2)))
    with pytest.raises(ValueError, match="'resamples' parameter"):
        estimate(synthetic_log(10, 0), resamples=-1)


def test_groups_rank_by_calls_then_name_and_the_rest_are_left_out() -> None:
    ids, top = rank_groups(["b", "a", "b", None, "c", "a", "b"], 2)
    assert top == ["b", "a"]
    assert ids.tolist() == [0, 1, 0, -1, -1, 1, 0]
