"""The replay's numbers: what the service's decisions realised, against always-strongest and the
baselines, from every tier's known outcome on the same calls.

Quality and cost are shares of always-strongest's on the same calls (quality over the calls
where both the chosen and the strongest tier's outcomes are known; cost at the config's prices
for the service's own token estimate). A swept curve is the service's decisions at every knob
of `KNOBS` (``quality_target`` per call, ``dry_run`` so nothing is explored or learned):

* **APGR**: the area under quality against the share of calls on the strongest tier, between
  always-cheapest and always-strongest (`training.metrics.apgr`);
* **savings at 95%**: the share of always-strongest's bill saved at 95% of its quality, mixtures
  of the curve's points allowed (`training.metrics.savings_at_quality_fraction`);
* **scores APGR**: the returned scores swept offline (each cheaper tier's score ranks the calls,
  `training.selection.pair_apgrs`): what the prior's scores alone would rank;
* the **category ceiling**: the best ranking a map that knows only each call's category can
  reach on these calls (`category_ceiling`);
* the **length rule** (longer calls to stronger tiers, `training.baselines.length_choices`) and a
  **random mixture** of the tiers, each at the cost of the service's default point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from router.config import Settings
from training.baselines import length_choices
from training.metrics import apgr, random_mixture_curve, savings_at_quality_fraction
from training.scoring import tier_costs
from training.selection import pair_apgrs

KNOBS = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1.0)
QUALITY_FRACTION = 0.95


def decision_costs(decisions: Sequence[dict[str, Any]], settings: Settings) -> np.ndarray:
    """(n, T) cost of each call on each tier, from the service's own token estimate."""
    return tier_costs([int(d["estimated_tokens_in"]) for d in decisions], settings)


def shares(chosen: np.ndarray, labels: np.ndarray, cost: np.ndarray) -> tuple[float, float]:
    """(quality, cost) of the tiers `chosen` per call, as shares of always-strongest's."""
    rows = np.arange(len(chosen))
    realised, strongest = labels[rows, chosen], labels[:, -1]
    known = ~np.isnan(realised) & ~np.isnan(strongest)
    quality = (realised[known].sum() / strongest[known].sum()
               if known.any() and strongest[known].sum() > 0 else math.nan)
    spend = cost[:, -1].sum()
    return float(quality), float(cost[rows, chosen].sum() / spend) if spend > 0 else math.nan


def window_stats(
    decisions: Sequence[dict[str, Any]], labels: np.ndarray, settings: Settings
) -> dict[str, Any]:
    """One window of live decisions: realised quality and cost against always-strongest, tier
    shares, the chosen tier's predicted against realised quality, the share explored."""
    tiers = settings.tier_names
    chosen = np.array([tiers.index(d["tier"]) for d in decisions])
    rows = np.arange(len(decisions))
    quality, cost = shares(chosen, labels, decision_costs(decisions, settings))
    predicted = np.array([d["scores"][d["tier"]] for d in decisions], dtype=float)
    realised = labels[rows, chosen]
    known = ~np.isnan(realised)
    return {
        "n": len(decisions),
        "quality_vs_strongest": quality,
        "cost_vs_strongest": cost,
        "share": {t: float(np.mean(chosen == i)) for i, t in enumerate(tiers)},
        "predicted": float(predicted[known].mean()) if known.any() else math.nan,
        "realised": float(realised[known].mean()) if known.any() else math.nan,
        "explored": float(np.mean([d["reason"] == "explore" for d in decisions])),
    }


def curve_stats(picks: np.ndarray, labels: np.ndarray, cost: np.ndarray) -> dict[str, float]:
    """APGR and savings at 95% of a (K, n) sweep of tier indices, on the fully labelled calls."""
    full = ~np.isnan(labels).any(axis=1)
    if full.sum() < 20:
        return {"apgr": math.nan, "savings_at_95": math.nan}
    y, c, p = labels[full], cost[full], picks[:, full]
    rows = np.arange(len(y))
    quality = np.array([y[rows, k].mean() for k in p])
    spend = np.array([c[rows, k].mean() for k in p])
    strong_share = (p == y.shape[1] - 1).mean(axis=1)
    return {
        "apgr": apgr(strong_share, quality, float(y[:, 0].mean()), float(y[:, -1].mean())),
        "savings_at_95": savings_at_quality_fraction(spend, quality, float(c[:, -1].mean()),
                                                     float(y[:, -1].mean()), QUALITY_FRACTION),
    }


def category_ceiling(labels: np.ndarray, categories: np.ndarray) -> float:
    """The APGR of the best map that knows only each call's category: categories moved from
    the cheapest to the strongest tier in order of their true gap between the two, measured on
    these very calls (an in-sample bound on what any per-category map can rank)."""
    full = ~np.isnan(labels).any(axis=1)
    y, cats = labels[full], np.asarray(categories)[full].astype(str)
    names = np.unique(cats)
    if len(y) < 20 or len(names) == 0:
        return math.nan
    gap = {c: float((y[cats == c, -1] - y[cats == c, 0]).mean()) for c in names}
    ranked = sorted(names, key=lambda c: -gap[c])
    strongest = labels.shape[1] - 1
    picks = np.array([np.where(np.isin(cats, ranked[:j]), strongest, 0)
                      for j in range(len(ranked) + 1)])
    return curve_stats(picks, y, np.ones_like(y))["apgr"]


def baselines_at(
    cost_share: float, labels: np.ndarray, cost: np.ndarray, tokens: np.ndarray
) -> dict[str, float]:
    """The length rule's and a random mixture's quality share at `cost_share` of
    always-strongest's cost, and the length rule's own APGR and savings at 95%."""
    full = ~np.isnan(labels).any(axis=1)
    if full.sum() < 20 or not math.isfinite(cost_share):
        return {"length_quality": math.nan, "random_quality": math.nan,
                "length_apgr": math.nan, "length_savings_at_95": math.nan}
    y, c = labels[full], cost[full]
    rows = np.arange(len(y))
    strong_q, strong_c = float(y[:, -1].mean()), float(c[:, -1].mean())
    picks = length_choices(tokens[full], y.shape[1])
    lq = np.array([y[rows, k].mean() for k in picks]) / strong_q
    lc = np.array([c[rows, k].mean() for k in picks]) / strong_c
    order = np.argsort(lc, kind="stable")
    rc, rq = random_mixture_curve(y.mean(axis=0), c.mean(axis=0))
    return {
        "length_quality": float(np.interp(cost_share, lc[order], lq[order])),
        "random_quality": float(np.interp(cost_share, rc / strong_c, rq / strong_q)),
        **{f"length_{k}": v for k, v in curve_stats(
            np.vstack([picks]), labels[full], c).items()},
    }


def live_stats(
    decisions: Sequence[dict[str, Any]], labels: np.ndarray, settings: Settings
) -> dict[str, Any]:
    """Live decisions (`window_stats`) beside the length rule and a random mixture at the
    cost they realised, on the same calls."""
    point = window_stats(decisions, labels, settings)
    tokens = np.array([int(d["estimated_tokens_in"]) for d in decisions])
    return {**point, **baselines_at(point["cost_vs_strongest"], labels,
                                    decision_costs(decisions, settings), tokens)}


def sweep_stats(
    picks: np.ndarray, default: Sequence[dict[str, Any]], labels: np.ndarray,
    settings: Settings,
) -> dict[str, Any]:
    """A frozen state's numbers: its swept curve, its default point against always-strongest
    and the baselines at the same cost, and the default point's calibration."""
    cost = decision_costs(default, settings)
    tokens = np.array([int(d["estimated_tokens_in"]) for d in default])
    point = window_stats(default, labels, settings)
    scores = np.array([[d["scores"][t] for t in settings.tier_names] for d in default], float)
    by_pair = pair_apgrs(scores, labels, settings.tier_names)
    return {**point, "scores_apgr": float(np.mean(list(by_pair.values()))) if by_pair
            else math.nan, **curve_stats(picks, labels, cost),
            **baselines_at(point["cost_vs_strongest"], labels, cost, tokens)}


__all__ = ["KNOBS", "baselines_at", "category_ceiling", "curve_stats", "decision_costs",
           "live_stats", "shares", "sweep_stats", "window_stats"]
