"""The logistic arithmetic every fitted part of the router shares, written once.

Quality labels are fractions in [0, 1] (a tier's mean over judges, a judge's score), and
scikit-learn's classifiers take 0/1 labels. `fractional_rows` fits them exactly: each row is
given twice, as a success with weight ``w * y`` and as a failure with weight ``w * (1 - y)``,
and the rows whose weight is zero are dropped. `sigmoid` and `logit` are the squashing and its
inverse, clipped so that neither overflows.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before a logit


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), without overflow warnings for large |z|."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


def logit(p: np.ndarray | float, eps: float = EPS) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p))


def fractional_rows(
    X: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, 0/1 labels, weights) that fit labels `y` in [0, 1] with weights `w` exactly."""
    rows = np.concatenate([X, X])
    labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    weights = np.concatenate([w * y, w * (1.0 - y)])
    keep = weights > 0
    return rows[keep], labels[keep], weights[keep]
