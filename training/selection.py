"""Model selection by leave-one-dataset-out: the score that predicts out-of-distribution routing.

Each candidate is fitted on every group but one and scored on the held-out group, on the tier
pairs that group has, by RouteLLM's APGR (the weaker tier's score is the knob). Pairs whose two
tiers' mean quality on the held-out group differs by less than `MIN_TIER_GAP` are left out:
their APGR divides by a near-zero gap and is noise (alpacaeval small/medium: 2.8). The candidate
with the best mean held-out APGR wins; in-distribution numbers are never used to choose.

The default candidates are `TierQualityRouter` heads (with and without the out-of-distribution
guard). The `TierClassifier` heads (logreg, irt, knn, mlp) ranked within noise of them held out,
but their per-tier levels are fitted on different source mixes and are not comparable across
tiers, which a relative `quality_target` needs (see `decision.quality_head`); they stay
available as candidates (`build_head`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router.decision.classifier import TierClassifier
from router.decision.quality_head import TierQualityRouter
from router.errors import RouterError
from training.metrics import apgr
from training.progress import Progress

log = logging.getLogger(__name__)

MIN_PAIR_PROMPTS = 30
MIN_TIER_GAP = 0.05


@dataclass(frozen=True)
class Candidate:
    """A head recipe: `TierClassifier` parameters, and whether the cheap features are added."""

    name: str
    params: dict
    numeric: bool = False

    def as_metadata(self) -> dict[str, Any]:
        """The ``head`` entry of a model's metadata.json, which `head_recipe` reads back."""
        return {"name": self.name, **self.params}


def head_recipe(metadata: dict[str, Any]) -> Candidate:
    """The head recipe a model's metadata records, so it can be fitted again the same way."""
    head = dict(metadata.get("head") or {})
    if "name" not in head:
        raise RouterError(
            f"model {metadata.get('router_version', 'unversioned')} records no head recipe "
            "(its metadata.json has no 'head'): retrain it with this version of "
            "`tier-router train`"
        )
    name = str(head.pop("name"))
    return Candidate(name, head, numeric=bool(metadata.get("features", {}).get("numeric")))


@dataclass
class SelectionResult:
    best: Candidate
    table: list[dict] = field(default_factory=list)  # one row per (candidate, held-out group)
    means: dict[str, float] = field(default_factory=dict)  # candidate -> mean held-out APGR


_IRT = {"head": "irt", "C": 0.05, "group_effects": True}
_TQR = {"head": "tqr", "C": 0.05, "anchor_levels": True, "n_clusters": 32}
DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("tqr-guarded", {**_TQR, "ood_low": 0.2, "ood_high": 0.4}),
    Candidate("tqr", {**_TQR, "ood_low": None, "ood_high": None}),
)
CLASSIFIER_CANDIDATES: tuple[Candidate, ...] = (  # measured, within noise; not the default
    Candidate("logreg", {"head": "logreg", "C": 0.05}),
    Candidate("irt-shared", {**_IRT, "tier_specific": 0.0}),
    Candidate("irt", {**_IRT, "tier_specific": 0.3}),
    Candidate("irt-shared+features", {**_IRT, "tier_specific": 0.0}, numeric=True),
    Candidate("knn", {"head": "knn", "k": 50, "calibration": None}),
    Candidate("mlp", {"head": "mlp"}),
)


def build_head(
    candidate: Candidate, tiers: Sequence[str], seed: int
) -> TierClassifier | TierQualityRouter:
    """The unfitted head a candidate names; both kinds fit(X, Y, weights, groups=...)."""
    params = dict(candidate.params)
    if params.get("head") == "tqr":
        params.pop("head")
        return TierQualityRouter(tiers=tuple(tiers), random_state=seed, **params)
    return TierClassifier(tiers=tiers, random_state=seed, **params)


def pair_apgrs(
    scores: np.ndarray, labels: np.ndarray, tiers: Sequence[str], min_gap: float = 0.0
) -> dict[str, float]:
    """APGR for every (weak, strong) tier pair observed together on enough prompts whose mean
    qualities differ by at least `min_gap`."""
    out = {}
    for weak in range(len(tiers)):
        for strong in range(weak + 1, len(tiers)):
            both = ~np.isnan(labels[:, weak]) & ~np.isnan(labels[:, strong])
            if both.sum() < MIN_PAIR_PROMPTS:
                continue
            gap = labels[both, strong].mean() - labels[both, weak].mean()
            if abs(gap) < min_gap:
                continue
            value = sweep_apgr(scores[both, weak], labels[both, weak], labels[both, strong])
            if np.isfinite(value):
                out[f"{tiers[weak]}/{tiers[strong]}"] = value
    return out


def pair_curve(
    weak_score: np.ndarray, q_weak: np.ndarray, q_strong: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(strong share, mean quality) sending the lowest weak-tier scores to the strong tier first.

    The one sweep of a tier pair: selection reads its APGR, `training.report` also its CPT.
    """
    order = np.argsort(weak_score, kind="stable")
    n = len(order)
    gain = (q_strong - q_weak)[order]
    quality = q_weak.mean() + np.concatenate([[0.0], np.cumsum(gain)]) / n
    return np.arange(n + 1) / n, quality


def sweep_apgr(weak_score: np.ndarray, q_weak: np.ndarray, q_strong: np.ndarray) -> float:
    """APGR of `pair_curve`: send to the strong tier every prompt whose weak-tier score is below
    a threshold, over every threshold."""
    share, quality = pair_curve(weak_score, q_weak, q_strong)
    return apgr(share, quality, float(q_weak.mean()), float(q_strong.mean()))


def leave_one_group_out(
    X: np.ndarray,
    X_numeric: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    groups: np.ndarray,
    tiers: Sequence[str],
    candidates: Sequence[Candidate] = DEFAULT_CANDIDATES,
    eval_groups: Sequence[str] | None = None,
    seed: int = 0,
) -> SelectionResult:
    """Fit every candidate without each group, score it on that group, keep the best mean."""
    eval_groups = list(eval_groups or sorted(set(groups)))
    rows: list[dict] = []
    jobs = [(c, g) for c in candidates for g in eval_groups]
    bar = Progress(len(jobs), "leave-one-dataset-out", unit="fit")
    for candidate, group in jobs:
        held = groups == group
        features = np.hstack([X, X_numeric]) if candidate.numeric else X
        model = build_head(candidate, tiers, seed)
        model.fit(features[~held], labels[~held], weights[~held], groups=groups[~held])
        scores = model.predict_proba(features[held])
        for pair, value in pair_apgrs(scores, labels[held], tiers, MIN_TIER_GAP).items():
            rows.append({"candidate": candidate.name, "group": group, "pair": pair, "apgr": value})
        bar.update(1)
    bar.close()
    means = {
        c.name: float(np.mean([r["apgr"] for r in rows if r["candidate"] == c.name] or [np.nan]))
        for c in candidates
    }
    for name, value in means.items():
        log.info("LODO mean APGR %-14s %.4f", name, value)
    best = max(candidates, key=lambda c: np.nan_to_num(means[c.name], nan=-1.0))
    return SelectionResult(best=best, table=rows, means=means)
