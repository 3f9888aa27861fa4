"""The linear heads' predict_proba in plain numpy, because sklearn's per-call cost dominates.

A `TierClassifier` with a logistic-regression head and sigmoid (or isotonic, or no) calibration
is, at prediction time, one standardisation, one matrix product and an elementwise squashing.
Through sklearn the same arithmetic costs about 1 ms per tier for a single row (input checks,
a Python loop over the calibration folds, LabelEncoder fits), more than the int8 encoder
itself, on every routing decision. `compile_head` lifts the fitted numbers out once, at load.

It is exact, not an approximation: `compile_head` compares it with the classifier's own
`predict_proba` on probe rows and returns None (the caller keeps sklearn) for any head it does
not cover or any difference above `TOLERANCE`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)

TOLERANCE = 1e-6
PROBE_ROWS = 64


@dataclass(frozen=True)
class _Column:
    """One fitted (fold) model of one tier: a weight column and how its margin is squashed."""

    tier: int
    kind: str  # "logistic", "sigmoid" (Platt: expit(-(a f + b))), "isotonic"
    params: tuple[Any, ...]


class LinearHead:
    """(n, F) features -> (n, T) probabilities, as the compiled TierClassifier would give."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray,
                 intercepts: np.ndarray, columns: list[_Column], constants: dict[int, float],
                 n_tiers: int, monotone: bool):
        self.mean, self.scale = mean, scale
        self.weights, self.intercepts = weights, intercepts
        self.columns, self.constants = columns, constants
        self.n_tiers, self.monotone = n_tiers, monotone
        self.folds = np.bincount([c.tier for c in columns], minlength=n_tiers)
        self._platt = self._platt_params()

    def _platt_params(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not all(c.kind in ("sigmoid", "logistic") for c in self.columns):
            return None
        a = np.array([c.params[0] if c.kind == "sigmoid" else -1.0 for c in self.columns])
        b = np.array([c.params[1] if c.kind == "sigmoid" else 0.0 for c in self.columns])
        return a, b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        # float32 after scaling, as TierClassifier does, then float64 like sklearn's product
        scaled = ((np.asarray(X, dtype=np.float32) - self.mean) / self.scale).astype(np.float32)
        margins = scaled.astype(np.float64) @ self.weights + self.intercepts
        if self._platt is not None:
            a, b = self._platt
            probs = expit(-(a * margins + b))
        else:
            probs = np.column_stack([_squash(c, margins[:, j])
                                     for j, c in enumerate(self.columns)])
        out = np.zeros((len(X), self.n_tiers))
        for j, column in enumerate(self.columns):
            out[:, column.tier] += probs[:, j]
        out /= np.maximum(self.folds, 1)
        for tier, value in self.constants.items():
            out[:, tier] = value
        return np.maximum.accumulate(out, axis=1) if self.monotone else out


def _squash(column: _Column, margin: np.ndarray) -> np.ndarray:
    if column.kind == "logistic":
        return np.asarray(expit(margin))
    if column.kind == "sigmoid":
        a, b = column.params
        return np.asarray(expit(-(a * margin + b)))
    xs, ys = column.params
    return np.interp(margin, xs, ys)


def compile_head(classifier: Any) -> LinearHead | None:
    """The numpy form of a fitted TierClassifier, or None when it is not a covered head."""
    try:
        head = _lift(classifier)
    except _Unsupported as exc:
        log.info("scores go through sklearn: %s", exc)
        return None
    probe = _probe_rows(int(classifier.n_features_in_))
    try:
        expected = classifier.predict_proba(probe)
        got = head.predict_proba(probe)
    except Exception as exc:  # noqa: BLE001 - whatever fails, sklearn stays the reference
        log.warning("the numpy head could not be checked (%s); scores go through sklearn", exc)
        return None
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=TOLERANCE):
        log.warning("the numpy head differs from sklearn by %.2g; scores go through sklearn",
                    float(np.max(np.abs(got - expected))) if got.shape == expected.shape
                    else float("inf"))
        return None
    return head


class _Unsupported(Exception):
    """The classifier has a part the numpy head does not cover."""


def _lift(classifier: Any) -> LinearHead:
    head = getattr(classifier, "head", None)
    if head not in ("logreg", "irt"):
        raise _Unsupported(f"head {head!r} is neither 'logreg' nor 'irt'")
    scaler = classifier.scaler_
    if not getattr(scaler, "with_mean", False) or not getattr(scaler, "with_std", False):
        raise _Unsupported("the scaler does not centre and scale")
    n_tiers = len(classifier.tiers_)
    weights: list[np.ndarray] = []
    intercepts: list[float] = []
    columns: list[_Column] = []
    constants: dict[int, float] = {}
    per_tier = (_irt_folds(classifier) if head == "irt" else
                [(t, e) for t, e in enumerate(classifier.estimators_)])
    for tier, estimator in per_tier:
        if isinstance(estimator, float):
            constants[tier] = estimator
            continue
        for (weight, intercept), kind, params in _folds(estimator):
            weights.append(weight)
            intercepts.append(intercept)
            columns.append(_Column(tier, kind, params))
    return LinearHead(
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        weights=np.column_stack(weights) if weights else np.zeros((len(scaler.mean_), 0)),
        intercepts=np.asarray(intercepts),
        columns=columns, constants=constants, n_tiers=n_tiers,
        monotone=bool(getattr(classifier, "monotone", False)),
    )


Linear = tuple[np.ndarray, float]


class _TierView:
    """One tier's slice of the IRT head's shared model, as a per-tier linear model.

    The shared model reads [x, 10 one-hot(t), tier_specific x (x) one-hot(t), groups], so for
    tier t its margin is x . (w_x + tier_specific w_t) + 10 w_onehot[t] + w_groups . mean + b.
    """

    def __init__(self, classifier: Any, tier: int):
        self.classifier, self.tier = classifier, tier

    def linear(self, coef: np.ndarray, intercept: float) -> Linear:
        c = self.classifier
        F, T = int(c.n_features_in_), len(c.tiers_)
        groups = np.asarray(getattr(c, "group_mean_", np.zeros(0))) if c.group_effects else (
            np.zeros(0))
        if len(coef) != F + T + T * F + len(groups):
            raise _Unsupported(f"IRT model has {len(coef)} weights, expected "
                               f"{F + T + T * F + len(groups)}")
        inter = coef[F + T: F + T + T * F].reshape(T, F)[self.tier]
        weight = coef[:F] + float(c.tier_specific) * inter.astype(np.float64)
        bias = intercept + 10.0 * coef[F + self.tier] + float(coef[F + T + T * F:] @ groups)
        return weight, bias


def _irt_folds(classifier: Any) -> list[tuple[int, Any]]:
    shared = classifier.shared_
    return [(t, shared if isinstance(shared, float) else (_TierView(classifier, t), shared))
            for t in range(len(classifier.tiers_))]


def _folds(estimator: Any) -> list[tuple[Linear, str, tuple[Any, ...]]]:
    """((weight, intercept), squashing kind, its parameters) for each fold of one estimator.

    `estimator` is a tier's own model, or (a _TierView, the shared model) for the IRT head.
    """
    view, estimator = estimator if isinstance(estimator, tuple) else (None, estimator)
    if isinstance(estimator, LogisticRegression):
        return [(_linear(estimator, view), "logistic", ())]
    if not isinstance(estimator, CalibratedClassifierCV):
        raise _Unsupported(f"estimator {type(estimator).__name__}")
    out: list[tuple[Linear, str, tuple[Any, ...]]] = []
    for fold in estimator.calibrated_classifiers_:
        model = fold.estimator
        if not isinstance(model, LogisticRegression) or len(fold.calibrators) != 1:
            raise _Unsupported(f"calibrated {type(model).__name__}")
        calibrator = fold.calibrators[0]
        if fold.method == "sigmoid":
            params: tuple[Any, ...] = (float(calibrator.a_), float(calibrator.b_))
        elif fold.method == "isotonic" and getattr(calibrator, "out_of_bounds", "") == "clip":
            params = (np.asarray(calibrator.X_thresholds_), np.asarray(calibrator.y_thresholds_))
        else:
            raise _Unsupported(f"calibration {fold.method!r}")
        out.append((_linear(model, view), fold.method, params))
    return out


def _linear(model: LogisticRegression, view: _TierView | None) -> Linear:
    if list(np.asarray(model.classes_, dtype=float)) != [0.0, 1.0]:
        raise _Unsupported(f"classes {model.classes_!r} are not [0, 1]")
    coef = np.asarray(model.coef_, dtype=np.float64).ravel()
    intercept = float(np.ravel(model.intercept_)[0])
    return (coef, intercept) if view is None else view.linear(coef, intercept)


def _probe_rows(n_features: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(PROBE_ROWS, n_features)).astype(np.float32)
    rows[: PROBE_ROWS // 2] /= np.sqrt(n_features)  # embedding-sized, and larger ones
    rows[0] = 0.0
    return rows
