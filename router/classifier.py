"""Per-tier calibrated probability that a tier answers a call well, scikit-learn style.

Labels are an (n, T) matrix of outcomes in [0, 1] with NaN where a tier was not tried, so
full-information benchmarks (every tier on every prompt) and partial-information logs (one
tier per prompt, with inverse-propensity weights) train the same estimator. Fractional labels
(tier means, judge scores) are fitted exactly by giving each row twice, as a success with
weight y and as a failure with weight 1 - y.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import has_fit_parameter

from router.errors import NotFittedError

HEADS = ("logreg", "knn", "mlp")


def make_head(name: str, random_state: int = 0, C: float = 1.0, k: int = 50) -> BaseEstimator:
    """The small model fitted on top of the frozen embedding for one tier."""
    if name == "logreg":
        return LogisticRegression(C=C, max_iter=2000)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=k, weights="distance")
    if name == "mlp":
        return MLPClassifier(
            hidden_layer_sizes=(128,), alpha=1e-2, max_iter=300, random_state=random_state
        )
    raise ValueError(f"The 'head' parameter must be one of {HEADS}. Got {name!r} instead.")


class TierClassifier(ClassifierMixin, BaseEstimator):
    """One calibrated binary head per tier over the same features.

    Parameters
    ----------
    tiers : tier names, cheapest first; the order of `Y`'s columns and of the scores.
    head : "logreg", "knn" or "mlp".
    C, k : the logistic regression's inverse regularisation, the k of kNN.
    calibration : None, "sigmoid" or "isotonic" (CalibratedClassifierCV, cv=3).
    random_state : seed for everything random inside.
    """

    def __init__(
        self,
        tiers: Sequence[str] = ("small", "medium", "large"),
        head: str = "logreg",
        C: float = 1.0,
        k: int = 50,
        calibration: str | None = "sigmoid",
        random_state: int = 0,
    ):
        self.tiers = tiers
        self.head = head
        self.C = C
        self.k = k
        self.calibration = calibration
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> TierClassifier:
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2 or Y.shape != (X.shape[0], len(self.tiers)):
            raise ValueError(
                f"Y must have shape (n_samples, n_tiers) = ({X.shape[0]}, {len(self.tiers)}). "
                f"Got {Y.shape} instead."
            )
        if self.calibration not in (None, "sigmoid", "isotonic"):
            raise ValueError(
                "The 'calibration' parameter must be None, 'sigmoid' or 'isotonic'. "
                f"Got {self.calibration!r} instead."
            )
        weight = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        self.tiers_ = list(self.tiers)
        self.scaler_ = StandardScaler().fit(X)
        X = self.scaler_.transform(X).astype(np.float32)
        self.estimators_: list[BaseEstimator | float] = []
        for t in range(len(self.tiers_)):
            seen = ~np.isnan(Y[:, t])
            self.estimators_.append(self._fit_one(X[seen], Y[seen, t], weight[seen]))
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_one(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> BaseEstimator | float:
        if len(y) == 0:
            raise ValueError("every tier needs at least one labelled row; one tier has none")
        rows = np.concatenate([X, X])
        labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
        weights = np.concatenate([w * y, w * (1 - y)])
        keep = weights > 0
        rows, labels, weights = rows[keep], labels[keep], weights[keep]
        if len(np.unique(labels)) < 2:
            return float(labels[0])  # a tier that always (never) succeeded: a constant
        base = make_head(self.head, self.random_state, self.C, self.k)
        if self.calibration is not None:
            base = CalibratedClassifierCV(base, method=self.calibration, cv=3)
        return _fit_weighted(base, rows, labels, weights)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, T) probabilities that each tier answers well, columns in `tiers_` order."""
        if not hasattr(self, "estimators_"):
            raise NotFittedError("This TierClassifier is not fitted yet; call 'fit' first.")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have {self.n_features_in_} features per row. Got shape {X.shape}."
            )
        X = self.scaler_.transform(X).astype(np.float32)
        out = np.empty((len(X), len(self.estimators_)))
        for t, est in enumerate(self.estimators_):
            out[:, t] = est if isinstance(est, float) else est.predict_proba(X)[:, 1]
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, T) booleans: whether each tier is predicted to answer well."""
        return self.predict_proba(X) >= 0.5


def _fit_weighted(est: BaseEstimator, X: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Fit with sample weights where the head takes them, else on a weighted resample (kNN)."""
    est = clone(est)
    inner = est.estimator if isinstance(est, CalibratedClassifierCV) else est
    if has_fit_parameter(inner, "sample_weight"):
        return est.fit(X, y, sample_weight=w)
    return est.fit(*_resample(X, y, w))


def _resample(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted rows as a deterministic resample, for heads without sample_weight."""
    rng = np.random.default_rng(0)
    n = len(X) // 2 or 1
    idx = rng.choice(len(X), size=n, replace=True, p=w / w.sum())
    return X[idx], y[idx]
