"""The numpy head gives sklearn's numbers for every head it covers, and declines the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router.decision.artifact import load_model
from router.decision.classifier import TierClassifier
from router.decision.fast_head import compile_head


def data(seed: int = 0, n: int = 240, d: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    difficulty = X[:, 0] + 0.5 * rng.normal(size=n)
    Y = np.stack([(difficulty < t).astype(float) for t in (-0.3, 0.3, 1.0)], axis=1)
    Y[rng.random(Y.shape) < 0.1] = np.nan  # partial labels, as in the public data
    groups = rng.integers(0, 3, size=n)
    return X, Y, groups


@pytest.mark.parametrize("params", [
    {"head": "logreg", "calibration": "sigmoid"},
    {"head": "logreg", "calibration": "isotonic"},
    {"head": "logreg", "calibration": None},
    {"head": "logreg", "calibration": "sigmoid", "monotone": False},
    {"head": "irt", "calibration": "sigmoid", "tier_specific": 0.3},
    {"head": "irt", "calibration": None, "tier_specific": 0.0},
    {"head": "irt", "calibration": "sigmoid", "group_effects": True},
])
def test_same_scores_as_sklearn(params: dict) -> None:
    X, Y, groups = data()
    clf = TierClassifier(C=0.5, **params).fit(X, Y, groups=groups)
    head = compile_head(clf)
    assert head is not None
    rows = np.random.default_rng(1).normal(size=(100, X.shape[1])).astype(np.float32)
    np.testing.assert_allclose(head.predict_proba(rows), clf.predict_proba(rows), atol=1e-6)
    np.testing.assert_allclose(head.predict_proba(rows[:1]), clf.predict_proba(rows[:1]),
                               atol=1e-6)


def test_a_tier_that_always_succeeded_is_a_constant() -> None:
    X, Y, _ = data()
    Y[:, 2] = 1.0
    clf = TierClassifier().fit(X, Y)
    head = compile_head(clf)
    assert head is not None
    np.testing.assert_allclose(head.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_other_heads_stay_with_sklearn() -> None:
    X, Y, _ = data()
    assert compile_head(TierClassifier(head="knn", k=5).fit(X, Y)) is None


def test_loaded_model_uses_it_with_the_same_scores(model_dir: Path) -> None:
    model = load_model(model_dir)
    assert model.fast_head is not None
    rows = np.random.default_rng(2).normal(size=(20, 384)).astype(np.float32)
    np.testing.assert_allclose(model.fast_head.predict_proba(rows),
                               model.classifier.predict_proba(rows), atol=1e-6)
