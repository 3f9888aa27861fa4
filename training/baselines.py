"""The baselines every router number is read beside (STYLE: a dummy next to every learned model).

- **length**: longer prompts go to stronger tiers. The score is the length, in estimated tokens
  (``decision.features.CHARS_PER_TOKEN``), of the text the classifier sees (the call's view), so
  it competes on the same input as the router. For a tier pair the longest x% go to the strong
  tier; for three tiers see `length_choices`.
- **kNN**: ``TierClassifier(head="knn", k=50, calibration=None)`` on the same embeddings,
  swept through the same policy as the router: what a learned router is without its head.
- **oracle**: per prompt, the cheapest tier that reaches a quality threshold; sweeping the
  threshold draws the ceiling any router could reach.
- **random mixture**: sending each prompt to a tier at random, at matched cost (the convex
  frontier of the tiers' own points); a router is only worth its keep above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from router.decision.features import CHARS_PER_TOKEN, CallView
from training.classifier import TierClassifier
from training.metrics import OperatingPoint, oracle_choice, random_mixture_curve, routed_point

KNN_K = 50
LENGTH_STEPS = np.linspace(0.0, 1.0, 101)
ORACLE_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def length_tokens(views: Sequence[CallView]) -> np.ndarray:
    """Estimated tokens of each view's text: the length heuristic's score."""
    return np.array([math.ceil(len(v.text) / CHARS_PER_TOKEN) for v in views], dtype=float)


def length_pseudo_scores(length: np.ndarray, n_tiers: int) -> np.ndarray:
    """(n, T) scores shaped like a classifier's: shorter prompt, higher "a weaker tier will do".

    Pair sweeps read a weak tier's column and send the lowest scores to the strong tier first,
    so with these the longest prompts go first.
    """
    return np.repeat(-np.asarray(length, dtype=float)[:, None], n_tiers, axis=1)


def length_choices(
    length: np.ndarray, n_tiers: int, steps: np.ndarray = LENGTH_STEPS
) -> np.ndarray:
    """(len(steps), n) tier indices routing by length quantile along a 1-D path.

    A prompt's quantile r is its rank by length (ties by input order) over n. At step s in
    [0, 1] a prompt goes up one tier for every cut point 1 - s**j (j = 1 .. T-1) that r
    reaches: for three tiers the longest share s go at least to medium and the longest s**2 to
    large. s = 0 is always-cheapest, s = 1 always-strongest, and every step in between uses
    all three tiers, so one knob draws one curve, like the router's.
    """
    length = np.asarray(length, dtype=float)
    n = len(length)
    quantile = np.empty(n)
    quantile[np.argsort(length, kind="stable")] = np.arange(n) / max(n, 1)
    powers = np.arange(1, n_tiers)
    cuts = 1.0 - np.asarray(steps, dtype=float)[:, None] ** powers[None, :]  # (K, T-1)
    return (quantile[None, :, None] >= cuts[:, None, :]).sum(axis=2).astype(np.intp)


def knn_scores(
    train_x: np.ndarray,
    train_labels: np.ndarray,
    train_weights: np.ndarray,
    eval_x: np.ndarray,
    tiers: Sequence[str],
    seed: int,
) -> np.ndarray:
    """(n_eval, T) scores of a kNN router fitted on the training rows' embeddings."""
    # The kNN head fits a weighted resample of about half the labelled rows of a tier
    # (training.classifier._resample), so k must stay below that.
    observed = int(np.min((~np.isnan(train_labels)).sum(axis=0)))
    k = max(1, min(KNN_K, observed // 2))
    model = TierClassifier(tiers=tiers, head="knn", k=k, calibration=None, random_state=seed)
    model.fit(train_x, train_labels, train_weights)
    return model.predict_proba(eval_x)


def oracle_curve(
    quality: np.ndarray, cost: np.ndarray, thresholds: np.ndarray = ORACLE_THRESHOLDS
) -> list[OperatingPoint]:
    """The oracle's operating point at each quality threshold (0: always the cheapest)."""
    return [routed_point(quality, cost, oracle_choice(quality, cost, t)) for t in thresholds]


def random_curve(quality: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(costs, qualities) of random tier mixtures at matched cost, from the tiers' own means."""
    return random_mixture_curve(np.nanmean(quality, axis=0), np.nanmean(cost, axis=0))
