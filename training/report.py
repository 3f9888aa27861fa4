"""The numbers of `tier-router evaluate` for one scope (a source, or all rows pooled).

Definitions, recorded in every report.json under ``definitions``:

- *quality* is the tier label: the mean quality of the tier's training models on the prompt,
  in [0, 1]. A call is *answered well* when that label is >= ``SUCCESS_LABEL`` (0.5), which for
  0/1 benchmarks is plain correctness and for fractional labels (tier means, judge
  preferences) means "at least half good"; *realised success* is the share of routed calls
  answered well.
- *cost* is each tier's ``estimate_cost(view.tokens_in, expected_output_tokens)`` at the
  **config's prices** (today's deployed models), not the historical cost in the data, so the
  curves answer "what would this router cost us now".
- *pairs*: for every tier pair observed together on at least ``MIN_PAIR_PROMPTS`` prompts, the
  weak tier's score is the knob (RouteLLM): the lowest scores go to the strong tier first.
  APGR and CPT(50%/80%) come from that sweep.
- *curves* (three tiers, the policy's own knob) use only the prompts on which every tier is
  observed, so no point mixes measured and missing labels; *savings* is the share of the
  always-strongest bill saved at 95% of its quality on that curve, mixtures of points allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from training.baselines import LENGTH_STEPS, length_choices, oracle_curve, random_curve
from training.metrics import (
    OperatingPoint,
    apgr,
    bootstrap_ci,
    cpt,
    expected_calibration_error,
    reliability_table,
    routed_point,
    savings_at_quality_fraction,
)
from training.selection import MIN_PAIR_PROMPTS, pair_curve, sweep_apgr

SUCCESS_LABEL = 0.5
QUALITY_FRACTION = 0.95
N_BINS = 10
REALISED_TARGETS = np.round(np.arange(0.5, 0.951, 0.05), 2)
ROUTER = "router"

DEFINITIONS = {
    "quality": "tier label: mean quality of the tier's training models on the prompt, in [0, 1]",
    "answered_well": f"tier label >= {SUCCESS_LABEL}",
    "cost": "estimate_cost(view.tokens_in, expected_output_tokens) at the config's prices",
    "pairs": f"weak-tier score sweep on prompts where both tiers are observed "
             f"(>= {MIN_PAIR_PROMPTS} prompts)",
    "curves": "policy sweep (decision.policy.decide) on prompts where every tier is observed",
    "savings_at_95": f"1 - cost at {QUALITY_FRACTION:.0%} of the strongest tier's quality / "
                     "its cost, over the curve (mixtures of points allowed); null if never "
                     "reached",
    "reach": "the curve's best mean quality / the strongest tier's (the top of the knob: at "
             "target 1.0 the policy takes the best-scored tier, not always the strongest)",
    "length": "longest prompts (view text, estimated tokens) to stronger tiers by quantile",
}


@dataclass
class EvalSet:
    """One scope's evaluation rows, aligned: labels, config costs and every method's routing.

    `scores` maps a method to (n, T) "this tier will do" scores, read by the pair sweeps;
    `choices` maps a method to (K, n) tier indices, one row per knob value in `steps`;
    `length` is the prompt length the length heuristic routes by.
    """

    tiers: list[str]
    sources: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    scores: dict[str, np.ndarray]
    choices: dict[str, np.ndarray]
    steps: dict[str, np.ndarray]
    length: np.ndarray
    default_target: float | None = None  # the config's quality_target: the shipped default

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, mask: np.ndarray) -> EvalSet:
        return replace(
            self,
            sources=self.sources[mask],
            quality=self.quality[mask],
            cost=self.cost[mask],
            scores={m: s[mask] for m, s in self.scores.items()},
            choices={m: c[:, mask] for m, c in self.choices.items()},
            length=self.length[mask],
        )


def concat_sets(sets: Sequence[EvalSet]) -> EvalSet:
    """Rows of several scopes as one (the pooled leave-one-dataset-out scope)."""
    first = sets[0]
    return replace(
        first,
        sources=np.concatenate([s.sources for s in sets]),
        quality=np.vstack([s.quality for s in sets]),
        cost=np.vstack([s.cost for s in sets]),
        scores={m: np.vstack([s.scores[m] for s in sets]) for m in first.scores},
        choices={m: np.hstack([s.choices[m] for s in sets]) for m in first.choices},
        length=np.concatenate([s.length for s in sets]),
    )


def scopes_report(es: EvalSet, seed: int, n_boot: int) -> dict[str, dict[str, Any]]:
    """`scope_report` for all rows pooled ("all"), for every data set of several sources
    pooled (e.g. "routerbench", its three benchmarks together), and every source on its own."""
    out = {"all": scope_report(es, seed, n_boot)}
    datasets = np.array([str(s).split("/")[0] for s in es.sources])
    for dataset in sorted(set(datasets)):
        if len(set(es.sources[datasets == dataset])) > 1:
            out[dataset] = scope_report(es.subset(datasets == dataset), seed, n_boot)
    for source in sorted(set(es.sources)):
        out[str(source)] = scope_report(es.subset(es.sources == source), seed, n_boot)
    return out


def scope_report(es: EvalSet, seed: int, n_boot: int) -> dict[str, Any]:
    """Everything measured on one scope: tiers alone, pairs, curves, savings, calibration."""
    complete = ~np.isnan(es.quality).any(axis=1)
    report: dict[str, Any] = {
        "n_prompts": len(es),
        "n_complete": int(complete.sum()),
        "tiers": tier_summary(es.quality, es.cost, es.tiers),
        "pairs": pair_report(es, seed, n_boot),
        "calibration": calibration(es.scores[ROUTER], es.quality, es.tiers)
        if ROUTER in es.scores else {},
    }
    if complete.sum() >= MIN_PAIR_PROMPTS:
        report.update(curve_report(es.subset(complete), seed, n_boot))
    return report


def tier_summary(quality: np.ndarray, cost: np.ndarray, tiers: Sequence[str]) -> dict:
    """Each tier alone, on the prompts where it is observed: the always-this-tier baseline."""
    out = {}
    for t, name in enumerate(tiers):
        seen = ~np.isnan(quality[:, t])
        out[name] = {
            "n": int(seen.sum()),
            "quality": _mean(quality[seen, t]),
            "success": _mean(quality[seen, t] >= SUCCESS_LABEL),
            "cost": _mean(cost[seen, t]),
        }
    return out


def pair_metrics(weak_score: np.ndarray, q_weak: np.ndarray, q_strong: np.ndarray) -> dict:
    """APGR, CPT(50%) and CPT(80%) of one method on one tier pair."""
    share, quality = pair_curve(weak_score, q_weak, q_strong)
    low, high = float(q_weak.mean()), float(q_strong.mean())
    return {
        "apgr": apgr(share, quality, low, high),
        "cpt50": cpt(share, quality, low, high, 0.5),
        "cpt80": cpt(share, quality, low, high, 0.8),
    }


def pair_report(es: EvalSet, seed: int, n_boot: int) -> dict[str, dict]:
    """Every tier pair observed together on enough prompts; the router's APGR with its CI."""
    out = {}
    for weak in range(len(es.tiers)):
        for strong in range(weak + 1, len(es.tiers)):
            both = ~np.isnan(es.quality[:, weak]) & ~np.isnan(es.quality[:, strong])
            if both.sum() < MIN_PAIR_PROMPTS:
                continue
            q_weak, q_strong = es.quality[both, weak], es.quality[both, strong]
            methods = {
                m: pair_metrics(s[both, weak], q_weak, q_strong) for m, s in es.scores.items()
            }
            if ROUTER in es.scores:
                arrays = {"weak_score": es.scores[ROUTER][both, weak], "q_weak": q_weak,
                          "q_strong": q_strong}
                methods[ROUTER]["apgr_ci"] = list(
                    bootstrap_ci(sweep_apgr, arrays, n_boot=n_boot, seed=seed)
                )
            out[f"{es.tiers[weak]}/{es.tiers[strong]}"] = {
                "n": int(both.sum()),
                "q_weak": float(q_weak.mean()),
                "q_strong": float(q_strong.mean()),
                "methods": methods,
            }
    return out


def curve_points(quality: np.ndarray, cost: np.ndarray, choices: np.ndarray) -> list:
    """The operating point of every knob value (one row of `choices` each)."""
    return [routed_point(quality, cost, row) for row in choices]


def success_rates(quality: np.ndarray, choices: np.ndarray) -> np.ndarray:
    """(K,) share of routed calls answered well, over calls whose chosen tier is observed."""
    chosen = np.take_along_axis(quality, choices.T, axis=1)  # (n, K)
    observed = ~np.isnan(chosen)
    good = np.where(observed, chosen >= SUCCESS_LABEL, False).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return good / observed.sum(axis=0)


def curve_records(
    points: Sequence[OperatingPoint], steps: np.ndarray, success: np.ndarray,
    tiers: Sequence[str],
) -> list[dict]:
    """One JSON-ready record per knob value: cost, quality, traffic share, realised success."""
    return [
        {
            "step": float(step),
            "cost": p.mean_cost,
            "quality": p.mean_quality,
            "success": float(s),
            "share": {t: float(x) for t, x in zip(tiers, p.share, strict=True)},
        }
        for p, step, s in zip(points, steps, success, strict=True)
    ]


def curve_savings(quality: np.ndarray, cost: np.ndarray, choices: np.ndarray) -> float:
    """Savings at 95% of the strongest tier's quality, over one method's swept curve.

    `choices` is (n, K) here (prompts first) so that a bootstrap can resample its rows.
    """
    rows = np.arange(len(quality))[:, None]
    costs, qualities = cost[rows, choices].mean(axis=0), quality[rows, choices].mean(axis=0)
    return _savings(costs, qualities, quality, cost)


def _savings(
    costs: np.ndarray, qualities: np.ndarray, quality: np.ndarray, cost: np.ndarray
) -> float:
    strong_cost, strong_quality = float(cost[:, -1].mean()), float(quality[:, -1].mean())
    if not strong_cost > 0:
        return float("nan")
    return savings_at_quality_fraction(
        costs, qualities, strong_cost, strong_quality, QUALITY_FRACTION
    )


def curve_report(es: EvalSet, seed: int, n_boot: int) -> dict[str, Any]:
    """Curves of every method and baseline, their savings, and realised-vs-target.

    `es` must hold only prompts on which every tier is observed. The length heuristic's
    quantiles are taken over these prompts, so each scope gets its own length path.
    """
    choices = {**es.choices, "length": length_choices(es.length, len(es.tiers))}
    steps = {**es.steps, "length": LENGTH_STEPS}
    curves = {
        m: curve_records(curve_points(es.quality, es.cost, c), steps[m],
                         success_rates(es.quality, c), es.tiers)
        for m, c in choices.items()
    }
    oracle = oracle_curve(es.quality, es.cost)
    curves["oracle"] = curve_records(
        oracle, np.linspace(0.0, 1.0, len(oracle)),
        np.full(len(oracle), np.nan), es.tiers,
    )
    random_costs, random_qualities = random_curve(es.quality, es.cost)
    lines = {m: (np.array([r["cost"] for r in records], dtype=float),
                 np.array([r["quality"] for r in records], dtype=float))
             for m, records in curves.items()}
    lines["random"] = (random_costs, random_qualities)
    strong_quality = float(es.quality[:, -1].mean())
    out: dict[str, Any] = {
        "curve_tiers": tier_summary(es.quality, es.cost, es.tiers),
        "curves": curves,
        "random": {"cost": random_costs.tolist(), "quality": random_qualities.tolist()},
        "savings_at_95": {m: _savings(c, q, es.quality, es.cost) for m, (c, q) in lines.items()},
        "reach": {m: float(np.nanmax(q)) / strong_quality if strong_quality > 0 else np.nan
                  for m, (_, q) in lines.items()},
    }
    if ROUTER in es.choices:
        arrays = {"quality": es.quality, "cost": es.cost, "choices": es.choices[ROUTER].T}
        out["savings_at_95_ci"] = list(bootstrap_ci(curve_savings, arrays, n_boot=n_boot,
                                                    seed=seed))
        out["realised_vs_target"] = realised_vs_target(curves[ROUTER])
        if es.default_target is not None:
            out["default_point"] = default_point(curves[ROUTER], es.default_target,
                                                 strong_quality, float(es.cost[:, -1].mean()))
    return out


def default_point(
    records: Sequence[dict], target: float, strong_quality: float, strong_cost: float
) -> dict[str, Any] | None:
    """What a user gets at the shipped default: tier shares, and quality and cost relative to
    always sending every call to the strongest tier."""
    by_step = {round(r["step"], 2): r for r in records}
    record = by_step.get(round(target, 2))
    if record is None:
        return None
    return {
        "target": float(target),
        "share": record["share"],
        "quality": record["quality"],
        "cost": record["cost"],
        "quality_vs_strongest": record["quality"] / strong_quality if strong_quality else None,
        "cost_vs_strongest": record["cost"] / strong_cost if strong_cost else None,
    }


def realised_vs_target(records: Sequence[dict]) -> list[dict]:
    """At the usual targets, the share of calls answered well beside the target asked for.

    The policy sends a call to the cheapest tier whose score reaches the target; if scores
    are calibrated, realised success should sit at or above the target.
    """
    by_step = {round(r["step"], 2): r for r in records}
    return [
        {"target": float(t), "realised_success": by_step[t]["success"],
         "quality": by_step[t]["quality"], "cost": by_step[t]["cost"],
         "share": by_step[t]["share"]}
        for t in REALISED_TARGETS if t in by_step
    ]


def calibration(scores: np.ndarray, quality: np.ndarray, tiers: Sequence[str]) -> dict:
    """ECE and the reliability table of every tier's score against its label."""
    out = {}
    for t, name in enumerate(tiers):
        seen = ~np.isnan(quality[:, t])
        if not seen.any():
            continue
        table = reliability_table(scores[seen, t], quality[seen, t], N_BINS)
        out[name] = {
            "ece": expected_calibration_error(scores[seen, t], quality[seen, t], N_BINS),
            "bin_centers": table.bin_centers.tolist(),
            "mean_predicted": table.mean_predicted.tolist(),
            "mean_realised": table.mean_realised.tolist(),
            "counts": table.counts.tolist(),
        }
    return out


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
