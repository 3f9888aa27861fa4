"""TierClassifier follows scikit-learn's conventions and learns a signal (synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest

from router.errors import NotFittedError
from training.classifier import HEADS, TierClassifier, make_head


def synthetic(n: int = 400, seed: int = 0, missing: float = 0.0):
    """Synthetic outcomes: tier t succeeds with P = sigmoid(ability_t - difficulty(x))."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    difficulty = 1.5 * X[:, 0]
    P = np.stack([1 / (1 + np.exp(-(a - difficulty))) for a in (-1.0, 0.0, 1.5)], axis=1)
    Y = (rng.random(P.shape) < P).astype(float)
    Y[rng.random(Y.shape) < missing] = np.nan
    return X, Y, difficulty


@pytest.mark.parametrize("head", ["logreg", "irt", "knn", "mlp"])
def test_heads_rank_prompts_by_difficulty(head: str) -> None:
    X, Y, difficulty = synthetic()
    model = TierClassifier(head=head, calibration=None if head == "knn" else "sigmoid").fit(X, Y)
    P = model.predict_proba(X)
    assert P.shape == (len(X), 3) and np.all((P >= 0) & (P <= 1))
    assert np.corrcoef(P[:, 0], -difficulty)[0, 1] > 0.5


def test_partial_information_and_fractional_labels() -> None:
    X, Y, difficulty = synthetic(missing=0.66)
    Y = np.where(np.isnan(Y), np.nan, np.clip(Y * 0.8 + 0.1, 0, 1))
    P = TierClassifier(head="irt").fit(X, Y).predict_proba(X)
    assert np.corrcoef(P[:, 1], -difficulty)[0, 1] > 0.5
    assert P[:, 2].mean() > P[:, 0].mean()  # stronger tier, higher scores


def test_constructor_stores_params_and_fit_returns_self() -> None:
    model = TierClassifier(head="logreg", C=0.3)
    assert model.get_params()["C"] == 0.3 and not hasattr(model, "tiers_")
    X, Y, _ = synthetic(100)
    assert model.fit(X, Y) is model and model.tiers_ == ["small", "medium", "large"]


def test_errors_say_what_was_expected() -> None:
    X, Y, _ = synthetic(50)
    with pytest.raises(NotFittedError, match="not fitted"):
        TierClassifier().predict_proba(X)
    with pytest.raises(ValueError, match=r"Y must have shape \(n_samples, n_tiers\)"):
        TierClassifier().fit(X, Y[:, :2])
    with pytest.raises(ValueError, match="The 'head' parameter must be one of"):
        TierClassifier(head="forest").fit(X, Y)
    fitted = TierClassifier().fit(X, Y)
    with pytest.raises(ValueError, match="must have 8 features"):
        fitted.predict_proba(X[:, :3])


def test_same_seed_same_model() -> None:
    X, Y, _ = synthetic(200)
    a = TierClassifier(head="mlp", random_state=3).fit(X, Y).predict_proba(X)
    b = TierClassifier(head="mlp", random_state=3).fit(X, Y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("head", HEADS)
def test_every_listed_head_fits_and_predicts(head: str) -> None:
    assert make_head(head).get_params()  # make_head and HEADS agree
    X, Y, _ = synthetic(120)
    model = TierClassifier(head=head).fit(X, Y)
    P = model.predict_proba(X)
    assert P.shape == (len(X), 3) and np.all((P >= 0) & (P <= 1))
    assert model.predict(X).dtype == bool


@pytest.mark.parametrize("head", ["knn", "mlp"])  # the heads whose fit draws random numbers
def test_random_state_is_honoured(head: str) -> None:
    """kNN fits a weighted resample, the MLP a random initialisation: both follow the seed."""
    X, Y, _ = synthetic(200)
    weights = np.random.default_rng(5).uniform(0.2, 3.0, size=len(X))  # synthetic weights

    def fitted(seed: int) -> np.ndarray:
        model = TierClassifier(head=head, k=5, calibration=None, random_state=seed)
        return model.fit(X, Y, weights).predict_proba(X)

    np.testing.assert_array_equal(fitted(1), fitted(1))
    assert not np.array_equal(fitted(1), fitted(2))


def test_group_effects_learn_within_group_difficulty() -> None:
    """Synthetic: group B is easier across the board; within each group, x0 sets difficulty.
    A pooled fit confuses the group offset (carried by x1) with difficulty; per-group
    intercepts keep the learned direction on x0."""
    rng = np.random.default_rng(1)
    n = 600
    group = np.where(rng.random(n) < 0.5, "A", "B")
    X = rng.normal(size=(n, 4)).astype(np.float32)
    X[:, 1] = (group == "B") * 2.0 + rng.normal(scale=0.1, size=n)
    logit = -1.5 * X[:, 0] + np.where(group == "B", 3.0, -3.0)
    Y = (rng.random((n, 3)) < 1 / (1 + np.exp(-logit[:, None]))).astype(float)
    pooled = TierClassifier(head="irt", tier_specific=0.0, calibration=None).fit(X, Y)
    within = TierClassifier(head="irt", tier_specific=0.0, calibration=None,
                            group_effects=True).fit(X, Y, groups=group)
    test = rng.normal(size=(200, 4)).astype(np.float32)
    test[:, 1] = rng.normal(1.0, 1.0, size=200)  # new prompts: x1 says nothing about them
    truth = -test[:, 0]
    assert np.corrcoef(within.predict_proba(test)[:, 0], truth)[0, 1] > 0.95
    assert np.corrcoef(pooled.predict_proba(test)[:, 0], truth)[0, 1] < 0.8
    with pytest.raises(ValueError, match="needs one group label per row"):
        TierClassifier(head="irt", group_effects=True).fit(X, Y)


def test_monotone_scores_never_rate_a_stronger_tier_lower() -> None:
    X, Y, _ = synthetic(300)
    Y[:, 2] = 1.0 - Y[:, 0]  # synthetic: the "strong" tier fails where the weak one succeeds
    raw = TierClassifier(head="logreg", monotone=False).fit(X, Y).predict_proba(X)
    mono = TierClassifier(head="logreg").fit(X, Y).predict_proba(X)
    assert (raw[:, 2] < raw[:, 0]).any()
    assert np.all(np.diff(mono, axis=1) >= 0)
    np.testing.assert_allclose(mono[:, 0], raw[:, 0])
