"""Fit a `LearnedMap` from evidence sums: pure, vectorised per level of the category tree.

`fit_map` takes the sums of every (key namespace, category) as a (T, len(COLUMNS)) array,
decayed to the fit's instant (router/traces/evidence.py), and returns a frozen map:

1. With ``share_across_keys``, each category is also pooled over keys into the ``*``
   namespace, no key supplying more than half of a pooled category's outcomes.
2. The model's scores are recalibrated per tier (`fit_calibration`).
3. At most ``max_categories`` categories stay live (most outcomes first, every key's root
   always), so 10,000 task names cannot grow memory without bound; a call of a dropped one is
   decided by its coarser level.
4. Level by level, coarse to fine, each category's Beta posterior per tier (learned_map's
   docstring), its mean, and the one-sided lower bound of its ratio to the strongest tier:
   log-normal (the delta method on log q_t - log q_top, the two posteriors independent);
   ``EXPLORE_DRAWS`` seeded draws of the ratio, sorted, are kept for exploration.

The same evidence and seed give the same map, so replicas on one store serve one map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np

from router.config import LearningConfig
from router.decision.categories import ROOT, SHARED, depth_of, parent_of
from router.decision.learned_map import (
    COLUMNS,
    EPS,
    EXPLORE_DRAWS,
    OFFSET,
    SN,
    TOTAL,
    W2,
    WY,
    CategoryKey,
    Entry,
    LearnedMap,
    N,
    P,
    S,
    W,
    Y,
)


def empty_map(tiers: Sequence[str], config: LearningConfig) -> LearnedMap:
    """The map before any outcome: every call is cold."""
    return LearnedMap(tuple(tiers), config, calibration=(0.0,) * len(tiers),
                      totals=np.zeros((len(tiers), len(COLUMNS))))


def fit_map(
    evidence: Mapping[CategoryKey, np.ndarray], tiers: Sequence[str], config: LearningConfig,
    seed: int = 0,
) -> LearnedMap:
    """The map of `evidence` (module docstring). Pure: the same input, the same map."""
    tiers = tuple(tiers)
    rng = np.random.default_rng(seed)
    evidence = {k: np.asarray(v, dtype=float) for k, v in evidence.items()}
    roots = [v for (ns, path), v in evidence.items() if path == ROOT and ns != SHARED]
    totals = np.sum(roots, axis=0) if roots else np.zeros((len(tiers), len(COLUMNS)))
    revision = int(round(float(totals[:, TOTAL].sum())))
    if config.share_across_keys:
        evidence.update(shared_evidence(evidence))
    calibration = fit_calibration(totals, config.calibration_strength)
    kept, dropped = _bounded(evidence, config.max_categories)
    levels: dict[int, list[CategoryKey]] = {}
    for key in kept:
        levels.setdefault(depth_of(key[1]), []).append(key)
    entries: dict[CategoryKey, Entry] = {}
    for depth in sorted(levels):
        keys = sorted(levels[depth])
        values = np.stack([evidence[k] for k in keys])
        parents = None
        if depth > 0:
            above = [entries[(ns, parent_of(path) or ROOT)] for ns, path in keys]
            parents = (np.array([e.quality for e in above]), np.array([e.score for e in above]))
        entries.update(zip(keys, _entries(values, parents, calibration, config, rng),
                           strict=True))
    return LearnedMap(tiers, config, entries, tuple(calibration.tolist()), revision, dropped,
                      totals=totals)


def shared_evidence(evidence: Mapping[CategoryKey, np.ndarray]) -> dict[CategoryKey, np.ndarray]:
    """Every category pooled over keys, no key supplying more than half of its outcomes: a
    larger share is scaled down to the others' total (one key alone supplies nothing)."""
    by_path: dict[str, list[np.ndarray]] = {}
    for (namespace, path), values in evidence.items():
        if namespace != SHARED:
            by_path.setdefault(path, []).append(values)
    shared = {}
    for path, parts in by_path.items():
        sizes = np.array([part[:, N].sum() for part in parts])
        total = sizes.sum()
        pooled = np.zeros_like(parts[0])
        for part, size in zip(parts, sizes, strict=True):
            others = total - size
            scale = 1.0 if size <= others else (others / size if size > 0 else 0.0)
            pooled += part * scale  # w^2 sums scale alike: the effective count scales too
        pooled[:, TOTAL] = 0.0  # the revision counts real outcomes, in the keys' namespaces
        shared[(SHARED, path)] = pooled
    return shared


def fit_calibration(totals: np.ndarray, strength: float) -> np.ndarray:
    """Per tier, the logit shift that makes the model's mean score of the outcomes a tier
    served match their mean label, shrunk toward none by `strength` outcomes (a shift of
    the mean's logit: Platt with the slope held at 1, which sums can carry)."""
    n = totals[:, N]
    with np.errstate(divide="ignore", invalid="ignore"):
        realised = np.where(n > 0, totals[:, Y] / n, 0.5)
        predicted = np.where(n > 0, totals[:, P] / n, 0.5)
    # a run of all-good labels says "at least 98%", not "certain"
    shift = _logit(np.clip(realised, 0.02, 0.98)) - _logit(np.clip(predicted, 0.02, 0.98))
    return shift * n / (n + strength) if strength > 0 else shift


def _bounded(evidence: Mapping[CategoryKey, np.ndarray], limit: int
             ) -> tuple[list[CategoryKey], int]:
    """Every root, then the categories with most outcomes (parents before children on a tie),
    up to `limit`; a category whose parent did not make it is left out too."""
    roots = [k for k in evidence if k[1] == ROOT]
    others = sorted((k for k in evidence if k[1] != ROOT),
                    key=lambda k: (-evidence[k][:, N].sum(), depth_of(k[1]), k))
    kept = set(roots)
    for key in others:
        if len(kept) - len(roots) >= limit:
            break
        parent = parent_of(key[1])
        if parent is None or (key[0], parent) in kept:
            kept.add(key)
    return list(kept), len(evidence) - len(kept)


def _entries(values: np.ndarray, parents: tuple[np.ndarray, np.ndarray] | None,
             calibration: np.ndarray, config: LearningConfig, rng: np.random.Generator
             ) -> list[Entry]:
    """The posteriors of E categories of one level: `values` (E, T, C); `parents` the
    (quality, score) of each one's parent, (E, T) each."""
    top = values.shape[1] - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(values[..., SN] > 0, values[..., S] / values[..., SN], np.nan)
    known = _sigmoid(_logit(np.nan_to_num(raw, nan=0.5)) + calibration)
    if parents is None:
        score = known
        base = np.clip(score, 0.01, 0.99)
    else:
        parent_quality, parent_score = parents
        score = np.where(np.isnan(raw), parent_score, known)
        base = np.clip(parent_quality + score - parent_score, 0.01, 0.99)
    w, wy, w2 = values[..., W], values[..., WY], values[..., W2]
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(w2 > 0, w * w / w2, 0.0)
        mean = np.clip(np.where(w > 0, wy / w, base), 0.0, 1.0)
    m = config.prior_strength
    alpha = np.maximum(m * base + n_eff * mean, EPS)
    beta = np.maximum(m * (1 - base) + n_eff * (1 - mean), EPS)
    quality = alpha / (alpha + beta)
    # var(q) / q^2 of each Beta: the variance of log q, to first order
    log_var = beta / (alpha * (alpha + beta + 1.0))
    spread = np.sqrt(log_var + log_var[:, top:])
    z = NormalDist().inv_cdf(config.bound)
    bound = np.minimum(quality / quality[:, top:] * np.exp(-z * spread), 1.0)
    bound[:, top] = 1.0
    draws = rng.beta(alpha[:, None, :], beta[:, None, :],
                     size=(len(values), EXPLORE_DRAWS, values.shape[1]))
    ratios = np.minimum(draws / np.maximum(draws[..., top:], EPS), 2.0 - EPS)
    kept = np.sort(ratios, axis=1).transpose(0, 2, 1)  # (E, T, K)
    flat = (kept + OFFSET * np.arange(values.shape[1])[None, :, None]).reshape(len(values), -1)
    sums = np.concatenate([np.zeros((len(values), 1)),
                           np.cumsum(kept.reshape(len(values), -1), axis=1)], axis=1)
    ratio = quality / quality[:, top:]
    score_ratio = score / np.maximum(score[:, top:], EPS)
    outcomes = values[..., N].sum(axis=1)
    return [
        Entry(outcomes=float(outcomes[i]), quality=tuple(quality[i].tolist()),
              ratio=tuple(ratio[i].tolist()), bound=tuple(bound[i].tolist()),
              score=tuple(score[i].tolist()), score_ratio=tuple(score_ratio[i].tolist()),
              evidence=tuple(n_eff[i].tolist()), draws=flat[i].astype(np.float32),
              sums=sums[i].astype(np.float32))
        for i in range(len(values))
    ]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
