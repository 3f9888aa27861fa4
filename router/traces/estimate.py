"""What following the current learned map buys, estimated off-policy from the store: the
newest labelled decisions in a window, each decided again by the map (router/decision/
target_policy.py), weighed against what was served (router/decision/off_policy.py).

**Which decisions.** Labelled outcomes (``quality`` set) of decisions the map decides: forced
tiers, escalations and degraded decisions are left out (the caller or a failure chose them).
A followed decision's served tier is its outcome's, with the decision's logged propensity; one
whose outcome names another tier (a fallback answered) is left out, its probability unknown. A
shadow decision's served tier is the caller's own model's (its outcome's tier), with
propensity 1: the caller chose it, not the router, so where the map would pick another tier
only DR's direct model speaks for the map there (the overlap says how often).

**Bounded.** One query on the reports' connection, driven by the outcomes' time index: the
newest ``max_rows`` labelled outcomes received since `since` (decided since then too), so a
store of a million decisions is read no further than that; the map decides each row again
(about 0.1 ms a row); the bootstrap's work, resamples x rows, is at most ``MAX_BOOTSTRAP``.
Every skipped decision is counted by why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from router.config import Settings
from router.decision.categories import Clusters, Signals
from router.decision.choice import TierTable
from router.decision.learned_map import LearnedMap
from router.decision.off_policy import Estimate, Interval, Logged, estimate, rank_groups
from router.decision.target_policy import LoggedCall, TargetChoice, target_choice
from router.errors import RequestLimitError
from router.schemas.estimate import (
    EstimateInterval,
    Estimators,
    PolicyEstimate,
    SpendEstimate,
)
from router.traces.rows import decode_embedding
from router.traces.store import TraceStore

MAX_ESTIMATE_ROWS = 100_000  # the most an estimate may read (GET /spend's bound)
MAX_BOOTSTRAP = 20_000_000  # resamples x rows: the bootstrap's work, bounded
COLD = "cold"  # the group of calls no category of enough outcomes decides

ESTIMATE_SQL = """
    SELECT d.tier AS decided_tier, d.propensity, d.shadow, d.api_key, d.role, d.task, d.step,
           d.embedding, d.prior_scores, d.tokens_in AS estimated_tokens_in, d.features,
           d.requested_model, d.max_cost_usd, o.tier AS outcome_tier, o.quality, o.cost_usd,
           o.tokens_in, o.tokens_out
    FROM outcomes o JOIN decisions d ON d.decision_id = o.decision_id
    WHERE o.received_at >= ? AND d.created_at >= ? AND o.quality IS NOT NULL
      AND d.reason NOT IN ('forced', 'degraded', 'escalation')
    ORDER BY o.received_at DESC, o.feedback_id DESC LIMIT ?"""


@dataclass(frozen=True)
class EstimateLimits:
    """How much an estimate may read and compute (GET /spend's and the CLI's bounds)."""

    categories: int = 10  # per-category figures for the categories with most calls
    max_rows: int = 10_000  # labelled decisions read, the newest first
    resamples: int = 200  # bootstrap resamples (0: no intervals)
    level: float = 0.95
    min_effective: float = 10.0  # effective calls below which a figure is withheld
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples * self.max_rows > MAX_BOOTSTRAP:
            raise RequestLimitError(
                "estimate_resamples", f"{self.resamples} resamples of {self.max_rows} rows "
                f"exceed the bootstrap's bound of {MAX_BOOTSTRAP:,} (resamples x rows): fewer "
                "resamples or estimate_rows", MAX_BOOTSTRAP // self.max_rows)


@dataclass(frozen=True)
class Served:
    """One usable logged decision: the call, and what was served and how it went."""

    call: LoggedCall
    tier: int
    propensity: float
    quality: float
    cost: float
    shadow: bool


def spend_estimate(store: TraceStore, settings: Settings, learned: LearnedMap,
                   clusters: Clusters | None, since: float | None,
                   limits: EstimateLimits = EstimateLimits()) -> SpendEstimate:
    """The estimate over the newest labelled decisions since `since` (module docstring)."""
    start = since if since is not None else 0.0
    rows = store.read(ESTIMATE_SQL, (start, start, limits.max_rows + 1), rows=limits.max_rows + 1)
    truncated = len(rows) > limits.max_rows
    served, skipped = served_calls(rows[:limits.max_rows], settings, clusters)
    table = TierTable.of(settings)
    target = settings.quality_target
    kept: list[Served] = []
    choices: list[TargetChoice] = []
    for item in served:
        try:
            choices.append(target_choice(learned, table, item.call, target))
        except RequestLimitError:
            why = "its model's tier and those below it cannot serve it"
            skipped[why] = skipped.get(why, 0) + 1
            continue
        kept.append(item)
    names = [c.category or COLD for c in choices]
    groups, top = rank_groups(names, limits.categories)
    overall, per = estimate(_logged(kept, choices, len(table.names)), groups, len(top),
                            limits.resamples, limits.level, limits.min_effective, limits.seed)
    mode = _mode(kept)
    return SpendEstimate(
        quality_target=target, map_revision=learned.revision, mode=mode, since=since,
        max_rows=limits.max_rows, truncated=truncated, skipped=skipped,
        resamples=limits.resamples, level=limits.level,
        summary=summary(overall, mode, target, limits.level),
        overall=_policy(None, overall),
        categories=[_policy(name, e) for name, e in zip(top, per, strict=True)])


def served_calls(rows: Sequence[Mapping[str, Any]], settings: Settings,
                 clusters: Clusters | None) -> tuple[list[Served], dict[str, int]]:
    """The rows that can be estimated from, and how many were left out by why."""
    tiers = settings.tier_names
    table = TierTable.of(settings)
    paths = _cluster_paths(rows, clusters)
    out: list[Served] = []
    skipped: dict[str, int] = {}

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    for row, path in zip(rows, paths, strict=True):
        shadow = bool(row["shadow"])
        tier = row["outcome_tier"] or (None if shadow else row["decided_tier"])
        if tier not in tiers:
            skip("the model that served it is in no configured tier")
            continue
        if not shadow and tier != row["decided_tier"]:
            skip("another tier than the decided one served it (a fallback)")
            continue
        scores = _scores(row.get("prior_scores"), tiers)
        if scores is None:
            skip("no model scores stored")
            continue
        tokens_in = int(row["tokens_in"] if row["tokens_in"] is not None
                        else row["estimated_tokens_in"])
        tokens_out = int(row["tokens_out"] if row["tokens_out"] is not None
                         else settings.expected_output_tokens)
        cost = (float(row["cost_usd"]) if row["cost_usd"] is not None
                else table.tier(tier).estimate_cost(tokens_in, tokens_out))
        call = LoggedCall(
            signals=Signals(row["api_key"], row["role"], row["task"], row["step"]),
            cluster=path, scores=scores, tokens_in=tokens_in, tokens_out=tokens_out,
            has_tools=_has_tools(row.get("features")),
            ceiling_tier=None if shadow else _tier_of(settings, row.get("requested_model")),
            max_cost_usd=row.get("max_cost_usd"))
        out.append(Served(call, tiers.index(tier), 1.0 if shadow else float(
            row["propensity"] or 1.0), float(row["quality"]), cost, shadow))
    return out, skipped


def _mode(kept: Sequence[Served]) -> Literal["routed", "shadow", "mixed", "none"]:
    """Whether the decisions estimated from were followed, shadow, both, or none at all."""
    shadows = sum(s.shadow for s in kept)
    if not kept:
        return "none"
    return "shadow" if shadows == len(kept) else "routed" if shadows == 0 else "mixed"


def summary(overall: Estimate, mode: str, target: float, level: float) -> str:
    """The overall figure in one sentence (DR, the estimator with the least variance here)."""
    if not overall.enough:
        return f"No estimate yet: {overall.note}."
    q, c = overall.quality["dr"], overall.cost["dr"]
    text = (f"Following the map at quality_target {target:g}: {_say(q)} of always-strongest's "
            f"quality at {_say(c)} of its cost (doubly robust, {overall.calls} labelled "
            f"decisions, {level:.0%} intervals)")
    if mode == "shadow":
        text += (f"; against the models followed now: {_say(overall.quality_vs_served)} of "
                 f"their quality at {_say(overall.cost_vs_served)} of their cost")
    return text + (f"; {overall.note}." if overall.note else ".")


def _say(interval: Interval | EstimateInterval) -> str:
    if interval.value is None:
        return "(not enough evidence)"
    if interval.low is None or interval.high is None:
        return f"{interval.value:.2f}"
    return f"{interval.value:.2f} [{interval.low:.2f}, {interval.high:.2f}]"


def _logged(kept: Sequence[Served], choices: Sequence[TargetChoice], n_tiers: int) -> Logged:
    def matrix(values: list[tuple[float, ...]]) -> np.ndarray:
        return np.array(values, dtype=float).reshape(len(values), n_tiers)

    return Logged(
        tier=np.array([s.tier for s in kept], dtype=np.int64),
        propensity=np.array([s.propensity for s in kept], dtype=float),
        quality=np.array([s.quality for s in kept], dtype=float),
        cost=np.array([s.cost for s in kept], dtype=float),
        target=matrix([c.probabilities for c in choices]),
        predicted_quality=matrix([c.quality for c in choices]),
        predicted_cost=matrix([c.costs for c in choices]))


def _policy(category: str | None, e: Estimate) -> PolicyEstimate:
    def interval(i: Interval) -> EstimateInterval:
        return EstimateInterval(value=i.value, low=i.low, high=i.high)

    def by_estimator(figures: Mapping[str, Interval]) -> Estimators:
        return Estimators(**{name: interval(i) for name, i in figures.items()})

    return PolicyEstimate(
        category=category, calls=e.calls, effective_calls=e.effective_calls,
        strongest_effective_calls=e.strongest_effective_calls, overlap=e.overlap,
        unsupported=e.unsupported,
        enough_evidence=e.enough, note=e.note, quality=by_estimator(e.quality),
        cost=by_estimator(e.cost), served_quality=e.served_quality,
        served_cost_usd=e.served_cost_usd, quality_vs_served=interval(e.quality_vs_served),
        cost_vs_served=interval(e.cost_vs_served))


def _cluster_paths(rows: Sequence[Mapping[str, Any]], clusters: Clusters | None
                   ) -> list[str | None]:
    """Each row's embedding cluster as the service finds it (None: no embedding stored, or
    one of another dimension)."""
    paths: list[str | None] = [None] * len(rows)
    if clusters is None:
        return paths
    vectors = [decode_embedding(r.get("embedding")) for r in rows]
    usable = [i for i, v in enumerate(vectors) if v is not None and len(v) == clusters.dimension]
    if usable:
        ids = clusters.of(np.stack([vectors[i] for i in usable]))  # type: ignore[misc]
        for i, cluster in zip(usable, ids.tolist(), strict=True):
            paths[i] = clusters.path(int(cluster))
    return paths


def _scores(raw: Any, tiers: Sequence[str]) -> tuple[float, ...] | None:
    """The model's stored scores in tier order; None when a tier's is missing."""
    try:
        scores = json.loads(raw) if isinstance(raw, str) and raw else {}
    except json.JSONDecodeError:
        return None
    values = [scores.get(t) for t in tiers]
    known = [float(v) for v in values if isinstance(v, int | float)]
    return tuple(known) if len(known) == len(tiers) else None


def _has_tools(features: Any) -> bool:
    try:
        return int(json.loads(features or "{}").get("n_tools", 0)) > 0
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
        return False


def _tier_of(settings: Settings, model: str | None) -> str | None:
    """The tier a requested model names (by tier or model name), else None."""
    if model is None:
        return None
    for tier in settings.tiers:
        if model == tier.name or model in tier.models:
            return tier.name
    return None
