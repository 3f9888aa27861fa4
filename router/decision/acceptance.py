"""When a cheap answer is good enough on its own confidence: a threshold on its mean token
log-probability, learned per category from answers whose check result is known.

Confidence thresholds drift across domains (one model's -0.3 is another task's -1.2), so the
threshold is fitted per category from this deployment's outcomes, and with the safety rule of
the learned map: a threshold is kept only where the one-sided lower bound (`confidence`, 90%
by default) of the pass rate of every answer it would accept is at least the quality bar. The
lowest such threshold (the most answers accepted) wins; the bound is taken over all the
answers a threshold accepts, so a run of lucky answers far below the curve's confident end
cannot carry it alone. A category with fewer
than `min_outcomes` checked answers has no threshold: nothing is accepted on confidence
(conservative until evidence says otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from statistics import NormalDist

import numpy as np

from router.errors import NotFittedError


def lower_bound(successes: float, n: float, confidence: float) -> float:
    """One-sided Wilson lower bound of a pass rate (fractional successes allowed; a rate
    outside [0, 1], which summed and decayed evidence should never give, is clamped rather than
    left to fail a whole map rebuild)."""
    if n <= 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p = min(max(successes / n, 0.0), 1.0)
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


class AcceptanceThreshold:
    """Per category, the lowest mean-log-probability an answer needs to be accepted.

    Parameters: `quality_bar` (the pass rate accepted answers must keep, as a lower bound),
    `confidence` of that bound, `min_outcomes` a category needs. `fit(categories, logprobs,
    passed)` sets `thresholds_` (category -> threshold, or None: accept nothing) and
    `evidence_` (category -> checked answers)."""

    def __init__(self, quality_bar: float = 0.9, confidence: float = 0.9,
                 min_outcomes: int = 30):
        self.quality_bar = quality_bar
        self.confidence = confidence
        self.min_outcomes = min_outcomes

    def fit(self, categories: Sequence[Hashable], logprobs: Sequence[float],
            passed: Sequence[float]) -> AcceptanceThreshold:
        if not 0.0 <= self.quality_bar <= 1.0:
            raise ValueError(f"The 'quality_bar' parameter must be a float in [0, 1]. Got "
                             f"{self.quality_bar} instead.")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"The 'confidence' parameter must be a float in [0.5, 1). Got "
                             f"{self.confidence} instead.")
        cats = list(categories)
        lp = np.asarray(logprobs, dtype=float)
        ok = np.asarray(passed, dtype=float)
        if not len(cats) == len(lp) == len(ok):
            raise ValueError("categories, logprobs and passed must have the same length")
        self.thresholds_: dict[Hashable, float | None] = {}
        self.evidence_: dict[Hashable, int] = {}
        for cat in dict.fromkeys(cats):
            rows = np.array([c == cat for c in cats])
            self.thresholds_[cat] = self._threshold(lp[rows], ok[rows])
            self.evidence_[cat] = int(rows.sum())
        return self

    def _threshold(self, lp: np.ndarray, ok: np.ndarray) -> float | None:
        if len(lp) < self.min_outcomes:
            return None
        order = np.argsort(-lp, kind="stable")  # most confident first
        lp, ok = lp[order], ok[order]
        passes = np.cumsum(ok)
        best = None
        for k in range(len(lp)):  # accept the k + 1 most confident
            if k + 1 < len(lp) and lp[k + 1] == lp[k]:
                continue  # a threshold accepts every answer at its value
            n = k + 1
            if n < self.min_outcomes:
                continue
            if lower_bound(float(passes[k]), n, self.confidence) >= self.quality_bar:
                best = float(lp[k])
        return best

    def threshold(self, category: Hashable) -> float | None:
        """The category's threshold (None: nothing is accepted on confidence)."""
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("AcceptanceThreshold is not fitted: call fit first")
        return self.thresholds_.get(category)

    def accepts(self, category: Hashable, logprob_mean: float) -> bool:
        threshold = self.threshold(category)
        return threshold is not None and logprob_mean >= threshold
