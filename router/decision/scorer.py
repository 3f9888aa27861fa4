"""What a scorer is: the one interface every per-tier quality model follows, scikit-learn style.

A scorer answers one question per tier ("how likely is this tier good enough for this call?").
It is fitted on (n, d) features and an (n, T) label matrix in [0, 1] with NaN where a tier was
not tried; the constructor only stores parameters, `fit` sets trailing-underscore state
(``tiers_`` at least) and returns the scorer, and using it unfitted raises `NotFittedError`.
`predict_with_confidence` is the call serving makes: the scores and, for a scorer with an
out-of-distribution guard, how far its per-call scores were trusted (None without a guard).

The shipped scorer is `router.decision.quality_head.TierQualityRouter`; the candidates measured
against it in model selection live in `training/`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from router.errors import NotFittedError


class Scorer(Protocol):
    """Per-tier predicted quality in [0, 1], columns in ``tiers_`` order (cheapest first)."""

    tiers_: list[str]

    def fit(self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> Scorer: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def predict_with_confidence(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, T) scores and (n,) confidence in [0, 1], or None for a scorer without a guard."""
        ...


def check_fitted(scorer: object, attribute: str) -> None:
    """Raise `NotFittedError` naming the scorer when `fit` has not set `attribute`."""
    if not hasattr(scorer, attribute):
        raise NotFittedError(f"This {type(scorer).__name__} is not fitted yet; call 'fit' "
                             "first.")
