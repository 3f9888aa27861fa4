"""The acceptance threshold on SYNTHETIC data: log-probabilities and pass/fail drawn from a
made-up curve (no shared data set carries log-probabilities); it tests the rule, not a figure."""

from __future__ import annotations

import numpy as np
import pytest

from router.decision.acceptance import AcceptanceThreshold, lower_bound
from router.errors import NotFittedError


def synthetic(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean logprobs in [-3, 0]; P(pass) rises with confidence, `shift` moves the curve."""
    rng = np.random.default_rng(seed)
    lp = rng.uniform(-3.0, 0.0, n)
    passed = rng.random(n) < 1 / (1 + np.exp(-4 * (lp + 1.0 + shift)))
    return lp, passed.astype(float)


def test_the_accepted_answers_keep_the_quality_bar_on_fresh_draws() -> None:
    lp, ok = synthetic(2000, 0.0, seed=1)
    fitted = AcceptanceThreshold(quality_bar=0.9).fit(["code"] * len(lp), lp, ok)
    threshold = fitted.threshold("code")
    assert threshold is not None and -1.0 < threshold < 0.0
    fresh_lp, fresh_ok = synthetic(20000, 0.0, seed=2)
    accepted = fresh_lp >= threshold
    assert fresh_ok[accepted].mean() >= 0.9 and accepted.mean() > 0.1


def test_thresholds_are_per_category_because_confidence_drifts_across_domains() -> None:
    a_lp, a_ok = synthetic(1500, 0.0, seed=3)
    b_lp, b_ok = synthetic(1500, 1.0, seed=4)  # the same confidence means more here
    fitted = AcceptanceThreshold(quality_bar=0.9).fit(
        ["a"] * 1500 + ["b"] * 1500, np.r_[a_lp, b_lp], np.r_[a_ok, b_ok])
    a, b = fitted.threshold("a"), fitted.threshold("b")
    assert a is not None and b is not None and b < a - 0.5


def test_conservative_without_evidence_or_when_the_bar_is_out_of_reach() -> None:
    lp, ok = synthetic(20, 0.0, seed=5)
    fitted = AcceptanceThreshold(quality_bar=0.9, min_outcomes=30).fit(["x"] * 20, lp, ok)
    assert fitted.threshold("x") is None and not fitted.accepts("x", 0.0)
    assert not fitted.accepts("never-seen", 0.0)
    coin = AcceptanceThreshold(quality_bar=0.9).fit(["c"] * 500, np.linspace(-3, 0, 500),
                                                    np.tile([0.0, 1.0], 250))
    assert coin.threshold("c") is None  # a coin flip never earns acceptance


def test_lower_bound_and_parameter_errors() -> None:
    assert lower_bound(90, 100, 0.9) < 0.9 < lower_bound(900, 950, 0.9) + 0.05
    assert lower_bound(0, 0, 0.9) == 0.0
    assert lower_bound(12, 10, 0.9) == lower_bound(10, 10, 0.9) < 1.0  # clamped, not a ValueError
    assert lower_bound(-1, 10, 0.9) == 0.0
    with pytest.raises(NotFittedError):
        AcceptanceThreshold().threshold("x")
    with pytest.raises(ValueError, match="quality_bar"):
        AcceptanceThreshold(quality_bar=1.5).fit(["x"], [0.0], [1.0])
