"""The shipped head, TierQualityRouter: a scikit-learn estimator whose tiers' levels are
comparable, with an out-of-distribution guard, saved and loaded as a model directory.
Synthetic data only: the labels below are made up to exercise the arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone

from router.decision.artifact import HEAD_FILE, METADATA_FILE, load_model, save_model, sha256_of
from router.decision.features import FEATURE_NAMES, FeatureSpec, view_of_prompt
from router.decision.quality_head import TierQualityRouter
from router.errors import ArtifactError, NotFittedError, RouterError
from training.classifier import TierClassifier

TIERS = ("small", "medium", "large")
DIM = 384


def synthetic(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings in the first 16 dimensions; hard rows (dimension 0 high) fail the cheap
    tiers more often. Made-up labels."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, DIM))
    X[:, :16] = rng.normal(size=(n, 16))
    hard = X[:, 0] > 0
    p = np.where(hard[:, None], [0.2, 0.5, 0.9], [0.8, 0.9, 0.95])
    return X, (rng.uniform(size=(n, 3)) < p).astype(float)


def unguarded(**kw) -> TierQualityRouter:
    return TierQualityRouter(tiers=TIERS, C=1.0, n_clusters=8, ood_low=None, ood_high=None, **kw)


def test_the_constructor_stores_and_fit_sets_trailing_state() -> None:
    X, Y = synthetic()
    head = TierQualityRouter(tiers=TIERS, C=0.3, n_clusters=8)
    assert clone(head).get_params() == head.get_params()
    assert not hasattr(head, "tiers_")
    assert head.fit(X, Y) is head
    assert head.tiers_ == list(TIERS) and head.n_features_in_ == DIM
    assert head.coef_.shape == (3, DIM) and head.centroids_.shape == (8, DIM)
    scores = head.predict_proba(X)
    assert scores.shape == (len(X), 3) and np.all((scores >= 0) & (scores <= 1))
    hard = X[:, 0] > 0
    assert scores[hard, 0].mean() < scores[~hard, 0].mean() - 0.2  # it learned the signal


def test_unfitted_and_wrong_inputs_are_refused() -> None:
    X, Y = synthetic()
    with pytest.raises(NotFittedError, match="TierQualityRouter is not fitted"):
        TierQualityRouter().predict_proba(X)
    with pytest.raises(NotFittedError):
        TierQualityRouter().confidence(X)
    with pytest.raises(ValueError, match=r"Y must have shape \(240, 3\)"):
        TierQualityRouter(tiers=TIERS).fit(X, Y[:, :2])
    empty = Y.copy()
    empty[:, 1] = np.nan
    with pytest.raises(ValueError, match="every tier needs at least one labelled row"):
        TierQualityRouter(tiers=TIERS).fit(X, empty)
    with pytest.raises(ValueError, match=f"X must have {DIM} columns"):
        unguarded().fit(X, Y).predict_proba(X[:, :10])


def test_anchored_levels_sit_the_observed_gap_apart() -> None:
    """Each cheaper tier's mean prediction on rows where it and the next tier were both tried
    is the next tier's mean minus their observed gap, even when each tier's head saw a
    different mix of rows."""
    X, Y = synthetic(seed=1)
    Y[:80, 2] = np.nan  # large never tried on these
    Y[160:, 0] = np.nan  # small never tried on those
    head = unguarded().fit(X, Y)
    P = head.predict_proba(X)
    for t in (0, 1):
        both = ~np.isnan(Y[:, t]) & ~np.isnan(Y[:, t + 1])
        gap = (Y[both, t + 1] - Y[both, t]).mean()
        assert P[both, t + 1].mean() - P[both, t].mean() == pytest.approx(gap, abs=1e-4)
    free = unguarded(anchor_levels=False).fit(X, Y).predict_proba(X)
    assert not np.allclose(free, P)


def test_confidence_is_one_near_the_training_data_and_zero_far_from_it() -> None:
    X, Y = synthetic(seed=2)
    head = TierQualityRouter(tiers=TIERS, C=1.0, n_clusters=8).fit(X, Y)
    far = np.zeros((2, DIM))
    far[:, 100:110] = 1.0  # orthogonal to every training row
    near_scores, near = head.predict_with_confidence(X[:5])
    far_scores, distant = head.predict_with_confidence(far)
    assert np.all(near > 0.5) and np.all(distant == 0.0)
    np.testing.assert_allclose(far_scores, np.tile(head.pooled_, (2, 1)))
    np.testing.assert_allclose(head.confidence(far), distant)
    assert not np.allclose(near_scores, head.pooled_)


def test_save_and_load_give_the_same_scores_in_any_tier_order(tmp_path: Path) -> None:
    X, Y = synthetic(seed=3)
    head = TierQualityRouter(tiers=TIERS, C=1.0, n_clusters=8).fit(X, Y)
    model = load_model(save_model(tmp_path / "m", head, FeatureSpec(), router_version="t"))
    views = [view_of_prompt("hello")] * 4
    expected, confidence = head.predict_with_confidence(X[:4])
    got, got_confidence = model.scores_with_confidence(X[:4], views)
    np.testing.assert_allclose(got, expected)
    np.testing.assert_allclose(got_confidence, confidence)
    np.testing.assert_allclose(model.scores(X[:4], views, ["large", "small"]),
                               expected[:, [2, 0]])
    with pytest.raises(RouterError, match=r"no score for tiers \['huge'\]"):
        model.scores(X[:4], views, ["small", "huge"])


def test_the_feature_spec_is_recorded_and_assembled(tmp_path: Path) -> None:
    X, Y = synthetic(seed=4)
    spec = FeatureSpec.of(numeric=True)
    views = [view_of_prompt(f"prove {i} = {i}") for i in range(len(X))]
    numbers = np.asarray([v.numeric for v in views], dtype=np.float32)
    head = TierQualityRouter(tiers=TIERS, C=1.0, n_clusters=8).fit(
        spec.assemble(X, numbers), Y)
    model = load_model(save_model(tmp_path / "m", head, spec, router_version="t"))
    assert model.features == spec and model.metadata["features"]["numeric"] == list(FEATURE_NAMES)
    np.testing.assert_allclose(model.scores(X[:3], views[:3]),
                               head.predict_proba(np.hstack([X[:3], numbers[:3]])))
    with pytest.raises(ValueError, match="must name features"):
        FeatureSpec(("shoe_size",))


def test_a_mismatched_model_directory_is_refused(tmp_path: Path) -> None:
    X, Y = synthetic(seed=5)
    head = TierQualityRouter(tiers=TIERS, C=1.0, n_clusters=8).fit(X, Y)
    # metadata promising cheap numbers the head was not fitted on: refused at load
    wrong = save_model(tmp_path / "wrong", head, FeatureSpec.of(numeric=True),
                       router_version="t")
    with pytest.raises(ArtifactError, match="loads but cannot predict"):
        load_model(wrong)
    # a candidate head is not what a router serves: not saved, and not loaded
    other = TierClassifier(tiers=TIERS, calibration=None).fit(X, Y)
    with pytest.raises(ArtifactError, match="only a fitted TierQualityRouter is saved"):
        save_model(tmp_path / "other", other, FeatureSpec())
    swapped = save_model(tmp_path / "swapped", head, FeatureSpec(), router_version="t")
    joblib.dump(other, swapped / HEAD_FILE)
    meta = json.loads((swapped / METADATA_FILE).read_text())
    meta["head_sha256"] = sha256_of(swapped / HEAD_FILE)
    (swapped / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="does not hold a fitted TierQualityRouter"):
        load_model(swapped)
