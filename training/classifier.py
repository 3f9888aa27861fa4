"""Candidate scorers measured against the shipped head in model selection, and the kNN baseline.

A `TierClassifier` is a `router.decision.scorer.Scorer`: per-tier calibrated probability that
a tier answers a call well. Labels are an (n, T) matrix of outcomes in [0, 1] with NaN where a
tier was not tried, so full-information benchmarks (every tier on every prompt) and
partial-information logs (one tier per prompt, with inverse-propensity weights) train the same
estimator; fractional labels are fitted by `router.decision.logistic.fractional_rows`.

Not served: its per-tier levels are fitted on different source mixes and are not comparable
across tiers, which a relative ``quality_target`` needs (see `router.decision.quality_head`);
held out it ranked within noise of the shipped head (`training.selection`).
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

from router.decision.logistic import fractional_rows
from router.decision.scorer import check_fitted

HEADS = ("logreg", "knn", "mlp", "irt")


def make_head(name: str, random_state: int = 0, C: float = 1.0, k: int = 50) -> BaseEstimator:
    """The small model fitted on top of the frozen embedding: one per tier, or for "irt" the
    one logistic regression over stacked (prompt, tier) rows that all tiers share."""
    if name not in HEADS:
        raise ValueError(f"The 'head' parameter must be one of {HEADS}. Got {name!r} instead.")
    if name in ("logreg", "irt"):
        return LogisticRegression(C=C, max_iter=2000)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=k)
    if name == "mlp":
        return MLPClassifier(
            hidden_layer_sizes=(64,), alpha=1e-2, early_stopping=True, max_iter=60,
            random_state=random_state,
        )


class TierClassifier(ClassifierMixin, BaseEstimator):
    """One calibrated binary head per tier over the same features.

    Parameters
    ----------
    tiers : tier names, cheapest first; the order of `Y`'s columns and of the scores.
    head : one of `HEADS`: "logreg", "knn", "mlp" (one head per tier) or "irt" (one shared
        logistic regression, below).
    C, k : the logistic regression's inverse regularisation, the k of kNN.
    tier_specific : for "irt", the scale of the per-tier part of the features; 0 makes every
        tier share one difficulty direction, 1 is as free as separate heads.

    The "irt" head is item response theory with a learned item difficulty: one logistic
    regression over stacked (prompt, tier) rows, P(tier t good | x) = sigmoid(a_t - v.x -
    u_t.x), with the difficulty direction v shared by all tiers and the per-tier u_t damped by
    `tier_specific`. Every outcome of every tier trains the same v, which is what transfers
    to prompts unlike the training data.

    group_effects : for "irt", give each training group (data set) its own intercept while
        fitting, so the difficulty direction learns what makes a prompt hard *within* a data
        set, not which data set is easy; predictions use the groups' average intercept.
        Needs `groups` in `fit`.
    monotone : tiers are ability classes listed cheapest first, so a tier's score is raised to
        at least every cheaper tier's (a running maximum). Without it, separately fitted heads
        can rate a stronger tier below a weaker one, and then no quality_target reaches the
        strongest tier's quality.
    calibration : None, "sigmoid" or "isotonic" (CalibratedClassifierCV, cv=3).
    random_state : seed for everything random inside: the MLP's initialisation and the
        weighted resample of heads without sample weights (kNN).
    """

    def __init__(
        self,
        tiers: Sequence[str] = ("small", "medium", "large"),
        head: str = "logreg",
        C: float = 1.0,
        k: int = 50,
        calibration: str | None = "sigmoid",
        tier_specific: float = 0.3,
        group_effects: bool = False,
        monotone: bool = True,
        random_state: int = 0,
    ):
        self.tiers = tiers
        self.head = head
        self.C = C
        self.k = k
        self.calibration = calibration
        self.tier_specific = tier_specific
        self.group_effects = group_effects
        self.monotone = monotone
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        groups: np.ndarray | None = None,
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
        make_head(self.head)  # the head's name is checked before anything is fitted
        weight = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        self.tiers_ = list(self.tiers)
        self.scaler_ = StandardScaler().fit(X)
        X = self.scaler_.transform(X).astype(np.float32)
        self.estimators_: list[BaseEstimator | float] = []
        self.n_features_in_ = X.shape[1]
        if self.head == "irt":
            rows, tier_idx = _observed(Y)
            stacked = self._stack(X[rows], tier_idx)
            if self.group_effects:
                if groups is None or len(groups) != len(X):
                    raise ValueError("group_effects=True needs one group label per row of X")
                self.groups_, codes = np.unique(np.asarray(groups), return_inverse=True)
                onehot = np.eye(len(self.groups_), dtype=np.float32)[codes[rows]] * 10.0
                self.group_mean_ = onehot.mean(axis=0)
                stacked = np.hstack([stacked, onehot])
            self.shared_ = self._fit_one(stacked, Y[rows, tier_idx], weight[rows])
            return self
        for t in range(len(self.tiers_)):
            seen = ~np.isnan(Y[:, t])
            self.estimators_.append(self._fit_one(X[seen], Y[seen, t], weight[seen]))
        return self

    def _stack(self, X: np.ndarray, tier_idx: np.ndarray) -> np.ndarray:
        """Rows [x, one-hot(tier), tier_specific * x (x) one-hot(tier)] for the shared model."""
        T = len(self.tiers_)
        onehot = np.eye(T, dtype=np.float32)[tier_idx]
        inter = (onehot[:, :, None] * X[:, None, :]).reshape(len(X), -1) * self.tier_specific
        return np.hstack([X, onehot * 10.0, inter]).astype(np.float32)

    def _fit_one(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> BaseEstimator | float:
        if len(y) == 0:
            raise ValueError("every tier needs at least one labelled row; one tier has none")
        rows, labels, weights = fractional_rows(X, y, w)
        if len(np.unique(labels)) < 2:
            return float(labels[0])  # a tier that always (never) succeeded: a constant
        base = make_head(self.head, self.random_state, self.C, self.k)
        if self.calibration is not None:
            base = CalibratedClassifierCV(base, method=self.calibration, cv=3)
        return _fit_weighted(base, rows, labels, weights, self.random_state)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, T) probabilities that each tier answers well, columns in `tiers_` order."""
        scores = self._raw_proba(X)
        return np.maximum.accumulate(scores, axis=1) if self.monotone else scores

    def predict_with_confidence(self, X: np.ndarray) -> tuple[np.ndarray, None]:
        """The scores; no out-of-distribution guard, so no confidence."""
        return self.predict_proba(X), None

    def _raw_proba(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "estimators_")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have {self.n_features_in_} features per row. Got shape {X.shape}."
            )
        X = self.scaler_.transform(X).astype(np.float32)
        if self.head == "irt":
            T = len(self.tiers_)
            tier_idx = np.tile(np.arange(T), len(X))
            stacked = self._stack(np.repeat(X, T, axis=0), tier_idx)
            if self.group_effects:
                stacked = np.hstack([stacked, np.tile(self.group_mean_, (len(stacked), 1))])
            if isinstance(self.shared_, float):  # every training label was one value
                return np.full((len(X), T), self.shared_)
            return self.shared_.predict_proba(stacked)[:, 1].reshape(len(X), T)
        out = np.empty((len(X), len(self.estimators_)))
        for t, est in enumerate(self.estimators_):
            if isinstance(est, float):  # a tier whose training labels were all one value
                out[:, t] = est
            else:
                out[:, t] = est.predict_proba(X)[:, 1]
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, T) booleans: whether each tier is predicted to answer well."""
        return self.predict_proba(X) >= 0.5


def _observed(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, tier) index pairs of the labelled cells of Y."""
    rows, tiers = np.nonzero(~np.isnan(Y))
    return rows, tiers


def _fit_weighted(
    est: BaseEstimator, X: np.ndarray, y: np.ndarray, w: np.ndarray, random_state: int
) -> BaseEstimator:
    """Fit with sample weights where the head takes them, else on a weighted resample (kNN)."""
    est = clone(est)
    inner = est.estimator if isinstance(est, CalibratedClassifierCV) else est
    if has_fit_parameter(inner, "sample_weight"):
        return est.fit(X, y, sample_weight=w)
    return est.fit(*_resample(X, y, w, random_state))


def _resample(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted rows as a resample seeded by `random_state`, for heads without sample_weight."""
    rng = np.random.default_rng(random_state)
    idx = rng.choice(len(X), size=len(X), replace=True, p=w / w.sum())
    return X[idx], y[idx]
