"""Model selection by leave-one-dataset-out: the score that predicts out-of-distribution routing.

Each candidate is fitted on every group but one and scored on the held-out group, on the tier
pairs that group has, by RouteLLM's APGR over the sweep of the knob *as it is served*: the
policy's step 2 (`router.decision.policy.threshold_choice`, the ratio of a tier's score to the
best tier's) between the pair's two tiers at every ``quality_target`` of `TARGETS`
(`policy_pair_apgrs`). The pair APGR with the weaker tier's raw score as the knob
(`pair_apgrs`, RouteLLM's own) is kept beside it in the table, not used to choose. Pairs whose
two tiers' mean quality on the held-out group differs by less than `MIN_TIER_GAP` are left out:
their APGR divides by a near-zero gap and is noise (alpacaeval small/medium: 2.8). The
candidate with the best mean held-out policy APGR wins; in-distribution numbers are never used
to choose. The held-out groups are a parameter; none of them among the data is an error.

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

from router.decision.features import FeatureSpec
from router.decision.policy import threshold_choice
from router.decision.quality_head import TierQualityRouter
from router.decision.scorer import Scorer
from router.errors import RouterError
from training.classifier import TierClassifier
from training.metrics import apgr
from training.progress import Progress
from training.scoring import TARGETS

log = logging.getLogger(__name__)

MIN_PAIR_PROMPTS = 30
MIN_TIER_GAP = 0.05


@dataclass(frozen=True)
class Candidate:
    """A scorer recipe (`build_head` parameters), and whether the cheap features are added."""

    name: str
    params: dict
    numeric: bool = False

    @property
    def features(self) -> FeatureSpec:
        """The scorer input the recipe reads."""
        return FeatureSpec.of(self.numeric)

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
    table: list[dict] = field(default_factory=list)  # one row per (candidate, group, pair)
    means: dict[str, float] = field(default_factory=dict)  # candidate -> mean policy APGR
    pair_means: dict[str, float] = field(default_factory=dict)  # ... mean raw-score pair APGR

    @property
    def best_by_pair(self) -> str:
        """The candidate the raw-score pair APGR would have chosen, for the report."""
        return max(self.pair_means, key=lambda c: np.nan_to_num(self.pair_means[c], nan=-1.0))


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


def build_head(candidate: Candidate, tiers: Sequence[str], seed: int) -> Scorer:
    """The unfitted scorer a candidate names."""
    params = dict(candidate.params)
    if params.get("head") == "tqr":
        params.pop("head")
        return TierQualityRouter(tiers=tuple(tiers), random_state=seed, **params)
    return TierClassifier(tiers=tiers, random_state=seed, **params)


def tier_pairs(
    labels: np.ndarray, tiers: Sequence[str], min_gap: float = 0.0
) -> list[tuple[str, int, int, np.ndarray]]:
    """(name, weak, strong, rows) of every tier pair observed together on enough prompts whose
    mean qualities differ by at least `min_gap`."""
    out = []
    for weak in range(len(tiers)):
        for strong in range(weak + 1, len(tiers)):
            both = ~np.isnan(labels[:, weak]) & ~np.isnan(labels[:, strong])
            if both.sum() < MIN_PAIR_PROMPTS:
                continue
            gap = labels[both, strong].mean() - labels[both, weak].mean()
            if abs(gap) >= min_gap:
                out.append((f"{tiers[weak]}/{tiers[strong]}", weak, strong, both))
    return out


def pair_apgrs(
    scores: np.ndarray, labels: np.ndarray, tiers: Sequence[str], min_gap: float = 0.0
) -> dict[str, float]:
    """APGR of every pair of `tier_pairs`, the weaker tier's raw score as the knob."""
    out = {}
    for name, weak, strong, rows in tier_pairs(labels, tiers, min_gap):
        value = sweep_apgr(scores[rows, weak], labels[rows, weak], labels[rows, strong])
        if np.isfinite(value):
            out[name] = value
    return out


def policy_pair_apgrs(
    scores: np.ndarray, labels: np.ndarray, tiers: Sequence[str], min_gap: float = 0.0,
    targets: np.ndarray = TARGETS,
) -> dict[str, float]:
    """APGR of every pair of `tier_pairs` over the served knob's sweep between its two tiers."""
    out = {}
    for name, weak, strong, rows in tier_pairs(labels, tiers, min_gap):
        share, quality = policy_curve(scores[rows][:, [weak, strong]], labels[rows, weak],
                                      labels[rows, strong], targets)
        value = apgr(share, quality, float(labels[rows, weak].mean()),
                     float(labels[rows, strong].mean()))
        if np.isfinite(value):
            out[name] = value
    return out


def policy_curve(
    pair_scores: np.ndarray, q_weak: np.ndarray, q_strong: np.ndarray,
    targets: np.ndarray = TARGETS,
) -> tuple[np.ndarray, np.ndarray]:
    """(strong share, mean quality) at each knob of `targets`, each call's tier picked by the
    served step 2 between the two tiers (scores (n, 2): weak, strong)."""
    strong = np.array([[threshold_choice(row, float(t)) for row in pair_scores.tolist()]
                       for t in targets], dtype=bool)
    quality = np.where(strong, q_strong[None, :], q_weak[None, :]).mean(axis=1)
    return strong.mean(axis=1), quality


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
    """Fit every candidate without each group, score it on that group, keep the best mean
    policy APGR. `eval_groups`: the groups held out in turn (None: every group); those not in
    the data are skipped, and none in it is a RouterError naming them."""
    held_out = held_out_groups(groups, eval_groups)
    rows: list[dict] = []
    jobs = [(c, g) for c in candidates for g in held_out]
    bar = Progress(len(jobs), "leave-one-dataset-out", unit="fit")
    for candidate, group in jobs:
        held = groups == group
        features = candidate.features.assemble(X, X_numeric)
        model = build_head(candidate, tiers, seed)
        model.fit(features[~held], labels[~held], weights[~held], groups=groups[~held])
        scores = model.predict_proba(features[held])
        raw = pair_apgrs(scores, labels[held], tiers, MIN_TIER_GAP)
        for pair, value in policy_pair_apgrs(scores, labels[held], tiers, MIN_TIER_GAP).items():
            rows.append({"candidate": candidate.name, "group": group, "pair": pair,
                         "apgr": value, "pair_apgr": raw.get(pair, np.nan)})
        bar.update(1)
    bar.close()
    means, pair_means = (
        {c.name: float(np.nanmean([r[key] for r in rows if r["candidate"] == c.name]
                                  or [np.nan])) for c in candidates}
        for key in ("apgr", "pair_apgr"))
    for name in means:
        log.info("LODO mean APGR %-20s policy %.4f  pair %.4f", name, means[name],
                 pair_means[name])
    best = max(candidates, key=lambda c: np.nan_to_num(means[c.name], nan=-1.0))
    return SelectionResult(best=best, table=rows, means=means, pair_means=pair_means)


def held_out_groups(groups: np.ndarray, wanted: Sequence[str] | None) -> list[str]:
    """The groups to hold out in turn: `wanted` (in its order) that the data has, else all."""
    present = set(np.asarray(groups).tolist())
    if wanted is None:
        return sorted(present)
    found = [g for g in wanted if g in present]
    if not found:
        raise RouterError(f"none of the selection groups {list(wanted)} is in the training "
                          f"data (its groups: {sorted(present)})")
    missing = [g for g in wanted if g not in present]
    if missing:
        log.warning("selection groups not in the training data, skipped: %s", missing)
    return found
