"""Each tier's predicted quality for a call, with levels comparable across tiers and an
out-of-distribution guard. The decision is elsewhere (`decision.policy`); this only scores.

Why this shape (each choice measured leave-one-dataset-out; the study's tables are in the
model card and the issue-10 closing note):

- One logistic model per tier of "this tier answers well" on the sentence embedding, fitted on
  fractional labels (`decision.logistic.fractional_rows`).
  Held out, nothing tried ranked reliably better (gap models, cluster priors, kNN, regex request
  forms, IRT, within-source ridge all sat within the +-0.02 noise of this head or below it).
- ``anchor_levels``: no data set has every tier with every other, so each tier's head is fitted
  on a different mix of sources (llmrouter has no large tier, openmodels7 only small), and their
  levels on a new source are not comparable: the medium head rated medium ~0.95 of large on
  benchmarks where it is 0.78-0.90. Each cheaper tier's intercept is shifted so that, on the rows
  where it and the next stronger tier were both tried, its mean prediction sits the observed gap
  below the stronger tier's. This is what makes a *relative* quality_target transfer.
- Guard: a call whose best cosine similarity to the k-means centroids of the training embeddings
  is below ``ood_high`` is blended toward each tier's pooled training quality (on the same
  anchored scale), fully at ``ood_low``; ``confidence`` in [0, 1] says how much the per-prompt
  model was used. The prior is the tiers' pooled quality, not a safe tier, so it keeps savings.

Serving cost: one (1, d) x (d, T + K) product and a few vector ops in numpy (~20 us a call).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression

from router.decision.logistic import fractional_rows, logit, sigmoid
from router.decision.scorer import check_fitted


class TierQualityRouter(BaseEstimator):
    """Per-tier predicted quality in [0, 1], cheapest tier first.

    Parameters
    ----------
    tiers : tier names, cheapest first (the column order of Y and of the scores).
    C : inverse L2 penalty of the per-tier logistic models (on standardised embeddings).
    anchor_levels : align the tiers' levels by the gaps observed where both were tried.
    n_clusters : k-means centroids the guard measures closeness to.
    ood_low, ood_high : best centroid similarity at which confidence is 0 and 1; None: no guard.
    random_state : seed of k-means (the logistic fits are deterministic).
    """

    def __init__(
        self,
        tiers: Sequence[str] = ("small", "medium", "large"),
        C: float = 0.05,
        anchor_levels: bool = True,
        n_clusters: int = 32,
        ood_low: float | None = 0.2,
        ood_high: float | None = 0.4,
        random_state: int = 0,
    ):
        self.tiers = tiers
        self.C = C
        self.anchor_levels = anchor_levels
        self.n_clusters = n_clusters
        self.ood_low = ood_low
        self.ood_high = ood_high
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray | None = None,
        groups: np.ndarray | None = None,
    ) -> TierQualityRouter:
        """X: (n, d) embeddings; Y: (n, T) qualities in [0, 1], NaN where a tier was not tried
        (partial information is fine); sample_weight: e.g. inverse propensities. `groups` is
        accepted for the pipeline's common fit signature and not used."""
        X = _normalise(np.asarray(X, dtype=np.float64))
        Y = np.asarray(Y, dtype=np.float64)
        T = len(self.tiers)
        if Y.shape != (len(X), T):
            raise ValueError(f"Y must have shape ({len(X)}, {T}). Got {Y.shape} instead.")
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        seen = ~np.isnan(Y)
        if not seen.any(axis=0).all():
            raise ValueError("every tier needs at least one labelled row")
        self.tiers_ = list(self.tiers)
        self.n_features_in_ = X.shape[1]
        self.pooled_ = _pooled_levels(Y, seen, w)
        mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-8
        Z = (X - mean) / scale
        coef, intercept = np.zeros((T, X.shape[1])), np.zeros(T)
        for t in range(T):
            rows = seen[:, t]
            coef[t], intercept[t] = _fit_fractional(Z[rows], Y[rows, t], w[rows], self.C,
                                                    self.pooled_[t])
        self.coef_ = coef / scale  # standardisation folded in: one product at serving time
        self.intercept_ = intercept - self.coef_ @ mean
        if self.anchor_levels:
            self._anchor(X, Y, seen, w)
        km = KMeans(self.n_clusters, n_init=3, random_state=self.random_state).fit(X)
        self.centroids_ = _normalise(km.cluster_centers_)
        return self

    def _anchor(self, X: np.ndarray, Y: np.ndarray, seen: np.ndarray, w: np.ndarray) -> None:
        """Top down: shift tier t's intercept so its mean prediction on rows where t and t+1
        were both tried equals the (anchored) t+1 mean minus their observed mean gap."""
        logits = X @ self.coef_.T + self.intercept_
        for t in range(len(self.tiers_) - 2, -1, -1):
            both = seen[:, t] & seen[:, t + 1]
            if not both.any():
                continue
            wb = w[both]
            gap = np.average(Y[both, t + 1] - Y[both, t], weights=wb)
            above = np.average(sigmoid(logits[both, t + 1]), weights=wb)
            shift = _solve_shift(logits[both, t], wb, above - gap)
            self.intercept_[t] += shift
            logits[:, t] += shift

    def predict_with_confidence(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, T) predicted quality per tier and (n,) guard confidence, from one pass."""
        check_fitted(self, "coef_")
        X = _normalise(np.asarray(X, dtype=np.float64))
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} columns. Got {X.shape}.")
        head = sigmoid(X @ self.coef_.T + self.intercept_)
        conf = self._confidence(X)
        return conf[:, None] * head + (1.0 - conf[:, None]) * self.pooled_, conf

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, T) predicted quality per tier, cheapest first (what /route returns as scores)."""
        return self.predict_with_confidence(X)[0]

    def confidence(self, X: np.ndarray) -> np.ndarray:
        """(n,) in [0, 1]: 1 near the training data, 0 far from every centroid."""
        return self.predict_with_confidence(X)[1]

    def _confidence(self, Xn: np.ndarray) -> np.ndarray:
        if self.ood_low is None or self.ood_high is None:
            return np.ones(len(Xn))
        best = (Xn @ self.centroids_.T).max(axis=1)
        span = max(self.ood_high - self.ood_low, 1e-6)
        return np.clip((best - self.ood_low) / span, 0.0, 1.0)


def _normalise(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), 1e-12)


def _solve_shift(logits: np.ndarray, w: np.ndarray, target: float) -> float:
    """The logit shift whose weighted mean sigmoid equals `target` (bisection; monotone)."""
    target = float(np.clip(target, 1e-4, 1 - 1e-4))
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.average(sigmoid(logits + mid), weights=w) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _pooled_levels(Y: np.ndarray, seen: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pooled training quality per tier on one scale: the strongest tier's mean, then each
    cheaper tier the observed gap below the next (gaps on rows where both were tried)."""
    levels = np.empty(Y.shape[1])
    levels[-1] = np.average(Y[seen[:, -1], -1], weights=w[seen[:, -1]])
    for t in range(Y.shape[1] - 2, -1, -1):
        both = seen[:, t] & seen[:, t + 1]
        gap = np.average(Y[both, t + 1] - Y[both, t], weights=w[both]) if both.any() else 0.0
        levels[t] = levels[t + 1] - gap
    return np.clip(levels, 0.0, 1.0)


def _fit_fractional(
    Z: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, prior: float
) -> tuple[np.ndarray, float]:
    """Logistic regression on labels in [0, 1] (`fractional_rows`); a constant at the prior
    when every label is the same."""
    rows, labels, weights = fractional_rows(Z, y, w)
    if len(np.unique(labels)) < 2:
        return np.zeros(Z.shape[1]), float(logit(prior, eps=1e-4))
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(rows, labels, sample_weight=weights)
    return model.coef_[0], float(model.intercept_[0])
