"""A replay's orders reduced to figures with their spread, and those figures as printed.

One shuffled order is one draw: 250-call windows of binary labels move by a point or two from
order to order, so every figure is given as its mean over orders with the lowest and highest
order beside it (``ranges``), per window of the learning phase too (``windows``: the k-th window
of every order). `target_checks` reads a summary against the learned map's targets (while
learning, per window, the frozen map's default point, ranking and calibration) and says for
each whether it is met, with the figure; `markdown_tables` writes a report as the tables of a
results page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router.errors import RouterError

T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
SUMMARY_KEYS = ("apgr", "scores_apgr", "savings_at_95", "quality_vs_strongest",
                "cost_vs_strongest", "predicted", "realised", "length_apgr",
                "length_savings_at_95", "length_quality", "random_quality", "category_ceiling")
WINDOW_KEYS = ("outcomes", "quality_vs_strongest", "cost_vs_strongest", "predicted", "realised",
               "explored")

# The learned map's targets on two tiers: shares of the strongest tier's quality and cost,
# APGR margins and a calibration gap, each in the units the summary gives it.
LEARNING_QUALITY = 0.95
WINDOW_QUALITY = 0.93
DEFAULT_QUALITY = 0.95
DEFAULT_COST = 0.75
APGR_MARGIN = 0.05
APGR_SLACK_WITHOUT_NAMES = 0.01
CALIBRATION_GAP = 0.03


def _mean(values: Sequence[float]) -> float:
    """NaN-aware: savings are NaN where a curve never reaches 95%."""
    array = np.array(values, dtype=float)
    return float(np.nanmean(array)) if np.isfinite(array).any() else math.nan


def _range(values: Sequence[float]) -> list[float]:
    array = np.array(values, dtype=float)
    if not np.isfinite(array).any():
        return [math.nan, math.nan]
    return [float(np.nanmin(array)), float(np.nanmax(array))]


def _gap(stats: dict[str, Any]) -> float:
    return float(stats["predicted"] - stats["realised"])


def _means(where: Sequence[dict[str, Any]], keys: Sequence[str] = SUMMARY_KEYS
           ) -> dict[str, float]:
    out = {key: _mean([w[key] for w in where]) for key in keys if key in where[0]}
    if "predicted" in out and "realised" in out:
        out["gap"] = _mean([_gap(w) for w in where])
    return out


def _ranges(where: Sequence[dict[str, Any]], keys: Sequence[str] = SUMMARY_KEYS
            ) -> dict[str, list[float]]:
    out = {key: _range([w[key] for w in where]) for key in keys if key in where[0]}
    if "predicted" in where[0] and "realised" in where[0]:
        out["gap"] = _range([_gap(w) for w in where])
    return out


def _windows(orders: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The k-th window of every order that has one: mean and [lowest, highest] per figure."""
    deepest = max((len(o["curve"]) for o in orders), default=0)
    out = []
    for k in range(deepest):
        rows = [o["curve"][k] for o in orders if len(o["curve"]) > k]
        out.append({"orders": len(rows), "mean": _means(rows, WINDOW_KEYS),
                    "range": _ranges(rows, WINDOW_KEYS)})
    return out


def _live_by_source(orders: Sequence[dict[str, Any]], phase: str) -> dict[str, Any]:
    """A live phase per source, where several are mixed: mean and range over orders."""
    names = sorted(orders[0][phase].get("by_source", {}))
    return {s: {"mean": _means([o[phase]["by_source"][s] for o in orders]),
                "range": _ranges([o[phase]["by_source"][s] for o in orders])} for s in names}


def summarise(orders: Sequence[dict[str, Any]], ceilings: Sequence[float]) -> dict[str, Any]:
    """Means over orders of the prior's and the frozen state's numbers (overall and per
    source), the learning phase's (overall and per source where several are mixed), each
    with its range over orders, every window's, the worst window, and the APGR gain's 95%
    t-interval."""
    gains = np.array([o["frozen"]["apgr"] - o["prior"]["apgr"] for o in orders])
    k = len(gains)
    half = T_975.get(k - 1, 1.96) * gains.std(ddof=1) / math.sqrt(k) if k > 1 else math.nan
    sources = sorted(orders[0]["frozen"].get("by_source", {}))
    windows = [w["quality_vs_strongest"] for o in orders for w in o["curve"]]
    live = ("learning", "after") if all("after" in o for o in orders) else ("learning",)
    phases = ("prior", "frozen", *live)
    return {
        "orders": k,
        **{phase: _means([o[phase] for o in orders]) for phase in phases},
        "ranges": {phase: _ranges([o[phase] for o in orders]) for phase in phases},
        "windows": _windows(orders),
        "worst_window_quality": float(np.nanmin(windows)) if windows else math.nan,
        "worst_window_by_order": [float(np.nanmin([w["quality_vs_strongest"]
                                                   for w in o["curve"]]))
                                  if o["curve"] else math.nan for o in orders],
        "by_source": {s: {phase: _means([o[phase]["by_source"][s] for o in orders])
                          for phase in ("prior", "frozen")} for s in sources},
        "by_source_ranges": {s: {phase: _ranges([o[phase]["by_source"][s] for o in orders])
                                 for phase in ("prior", "frozen")} for s in sources},
        **{f"{phase}_by_source": _live_by_source(orders, phase) for phase in live},
        "apgr_gain": float(gains.mean()),
        "apgr_gain_ci": [float(gains.mean() - half), float(gains.mean() + half)],
        "ceiling_apgr": float(np.mean(ceilings)) if ceilings else math.nan,
    }


def read_report(path: Path) -> dict[str, Any]:
    """A report `tier-router replay --out` wrote, summarised again from its orders (so a
    report written before a figure was added has it too)."""
    try:
        report = json.loads(path.read_text())
        orders = report["orders"]
        report["summary"] = summarise(orders, report.get("ceilings", []))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, IndexError) as exc:
        raise RouterError(f"{path} is not a report of `tier-router replay --out` "
                          f"({type(exc).__name__}: {exc})") from None
    return dict(report)


def prior_apgr(summary: dict[str, Any]) -> float:
    """The prior's ranking: the better of its swept curve through the service and its scores
    swept offline (cold calls that all go to the strongest tier leave the first at 0.5)."""
    prior = summary["prior"]
    return float(np.nanmax([prior["apgr"], prior.get("scores_apgr", math.nan)]))


def target_checks(summary: dict[str, Any], with_task: bool = True) -> list[dict[str, Any]]:
    """Each target as {target, figure, met}: `figure` the mean over orders (its range where the
    summary has one), `met` judged on the mean. Without task names the ranking target is the
    prior's minus a point and there is no margin over the length rule."""
    learning, frozen, ranges = summary["learning"], summary["frozen"], summary["ranges"]
    prior = prior_apgr(summary)

    def spread(phase: str, key: str) -> str:
        low, high = ranges[phase][key]
        return f" [{low:.3f}, {high:.3f}]" if summary["orders"] > 1 else ""

    def row(target: str, value: float, met: bool, figure: str) -> dict[str, Any]:
        return {"target": target, "value": value, "figure": figure,
                "met": bool(met) if math.isfinite(value) else None}

    rows = [
        row(f"while learning >= {LEARNING_QUALITY:.2f} of strongest's quality",
            learning["quality_vs_strongest"],
            learning["quality_vs_strongest"] >= LEARNING_QUALITY,
            f"{learning['quality_vs_strongest']:.3f}"
            f"{spread('learning', 'quality_vs_strongest')} at cost "
            f"{learning['cost_vs_strongest']:.3f}{spread('learning', 'cost_vs_strongest')}"),
        row(f"every window >= {WINDOW_QUALITY:.2f}", summary["worst_window_quality"],
            summary["worst_window_quality"] >= WINDOW_QUALITY,
            f"worst {summary['worst_window_quality']:.3f} (per order "
            + ", ".join(f"{w:.3f}" for w in summary["worst_window_by_order"]) + ")"),
    ]
    points = [("after", "after learning, live default")] if "after" in summary else []
    for phase, name in [*points, ("frozen", "frozen dry-run default")]:
        point = summary[phase]
        rows.append(row(f"{name} >= {DEFAULT_QUALITY:.2f} of strongest's quality",
                        point["quality_vs_strongest"],
                        point["quality_vs_strongest"] >= DEFAULT_QUALITY,
                        f"{point['quality_vs_strongest']:.3f}"
                        f"{spread(phase, 'quality_vs_strongest')}"))
        if with_task:
            rows.append(row(f"{name} cost <= {DEFAULT_COST:.2f} of strongest's",
                            point["cost_vs_strongest"],
                            point["cost_vs_strongest"] <= DEFAULT_COST,
                            f"{point['cost_vs_strongest']:.3f}"
                            f"{spread(phase, 'cost_vs_strongest')}"))
    if with_task:
        rows.append(row(f"frozen APGR >= prior's + {APGR_MARGIN:.2f}", frozen["apgr"] - prior,
                        frozen["apgr"] >= prior + APGR_MARGIN,
                        f"{frozen['apgr']:.3f}{spread('frozen', 'apgr')} vs {prior:.3f}"))
        rows.append(row(f"frozen APGR >= length rule's + {APGR_MARGIN:.2f}",
                        frozen["apgr"] - frozen["length_apgr"],
                        frozen["apgr"] >= frozen["length_apgr"] + APGR_MARGIN,
                        f"{frozen['apgr']:.3f} vs {frozen['length_apgr']:.3f}"))
    else:
        rows.append(row(f"frozen APGR >= prior's - {APGR_SLACK_WITHOUT_NAMES:.2f}",
                        frozen["apgr"] - prior,
                        frozen["apgr"] >= prior - APGR_SLACK_WITHOUT_NAMES,
                        f"{frozen['apgr']:.3f}{spread('frozen', 'apgr')} vs {prior:.3f}"))
    for phase, name in [*points, ("frozen", "frozen dry-run default")]:
        gap = summary[phase]["gap"]
        rows.append(row(f"{name} calibration within {CALIBRATION_GAP * 100:.0f} points", gap,
                        abs(gap) <= CALIBRATION_GAP,
                        f"{gap * 100:+.1f}{_points(ranges[phase]['gap'], summary)}"))
    return rows


def _points(pair: Sequence[float], summary: dict[str, Any]) -> str:
    return f" [{pair[0] * 100:+.1f}, {pair[1] * 100:+.1f}]" if summary["orders"] > 1 else ""


def _row(name: str, s: dict[str, float]) -> str:
    return (f"  {name:<28} {s['apgr']:.3f}  {s['scores_apgr']:.3f}  {s['savings_at_95']:+.3f}  "
            f"{s['quality_vs_strongest']:.3f}  {s['cost_vs_strongest']:.3f}  "
            f"{s['predicted'] - s['realised']:+.3f}  {s['length_apgr']:.3f}  "
            f"{s['length_quality']:.3f}  {s['random_quality']:.3f}")


def _cell(mean: float, pair: Sequence[float], orders: int, fmt: str = ".3f") -> str:
    if orders < 2:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{pair[0]:{fmt}}, {pair[1]:{fmt}}]"


def format_replay(report: dict[str, Any]) -> str:
    """The learning curve of the first order, every window over the orders, the
    prior-vs-frozen table and the targets, as printed."""
    lines = [f"replay of {report['source']} through {report['url']} (prior {report['prior']}, "
             f"tiers {', '.join(report['tiers'])}, task names "
             f"{'sent' if report.get('with_task', True) else 'withheld'})"]
    first = report["orders"][0]
    lines.append("learning (order 1): outcomes  quality/strongest  cost/strongest  pred  real  "
                 "explored  shares")
    for w in first["curve"]:
        shares = " ".join(f"{t}:{v:.2f}" for t, v in w["share"].items())
        lines.append(f"  {w['outcomes']:>6}  {w['quality_vs_strongest']:.3f}  "
                     f"{w['cost_vs_strongest']:.3f}  {w['predicted']:.3f}  {w['realised']:.3f}  "
                     f"{w['explored']:.3f}  {shares}")
    s = report["summary"]
    k = s["orders"]
    if k > 1 and s.get("windows"):
        lines.append(f"every window over {k} orders (mean [lowest, highest]): window  "
                     "quality/strongest  cost/strongest  pred-real")
        for i, w in enumerate(s["windows"], 1):
            lines.append(f"  {i:>3}  " + "  ".join(_live_cells(w["mean"], w["range"], k,
                                                               _cell)))
    learning = s["learning"]
    lines += [
        f"over {k} orders: while learning {learning['quality_vs_strongest']:.3f} of "
        f"always-strongest's quality at {learning['cost_vs_strongest']:.3f} of its cost; worst "
        f"window {s['worst_window_quality']:.3f}",
    ]
    for source, both in s.get("learning_by_source", {}).items():
        m = both["mean"]
        lines.append(f"  while learning, {source}: {m['quality_vs_strongest']:.3f} of "
                     f"always-strongest's quality at {m['cost_vs_strongest']:.3f} of its cost")
    if "after" in s:
        after = s["after"]
        lines.append(f"after learning, the scored calls routed live (no feedback): "
                     f"{after['quality_vs_strongest']:.3f} of always-strongest's quality at "
                     f"{after['cost_vs_strongest']:.3f} of its cost (length "
                     f"{after['length_quality']:.3f}, random {after['random_quality']:.3f} at "
                     "that cost)")
    lines += [
        f"scored on {report['score']} held-back calls after {report['learn']} outcomes "
        "(quality, cost: shares of always-strongest's at the default knob; length, random: "
        "quality at that cost):",
        "  state                        APGR   scores savings@95 quality cost  pred-real "
        "length_APGR length random",
        _row("prior", s["prior"]), _row("frozen", s["frozen"]),
    ]
    for source, both in s["by_source"].items():
        lines += [_row(f"{source} prior", both["prior"]), _row(f"{source} frozen",
                                                              both["frozen"])]
    lines.append(f"  APGR gain {s['apgr_gain']:+.3f} (95% CI {s['apgr_gain_ci'][0]:+.3f} .. "
                 f"{s['apgr_gain_ci'][1]:+.3f}); full-information ceiling "
                 f"{s['ceiling_apgr']:.3f}")
    if "ranges" in s:
        lines.append("against the targets (mean over orders [lowest, highest]):")
        for check in target_checks(s, report.get("with_task", True)):
            verdict = {True: "met", False: "NOT met", None: "no figure"}[check["met"]]
            lines.append(f"  {check['target']:<48} {verdict:<9} {check['figure']}")
    return "\n".join(lines)


def _live_cells(mean: dict[str, float], pair: dict[str, list[float]], orders: int,
                cell: Any) -> list[str]:
    """Quality and cost against strongest, and predicted minus realised, as `cell` shows
    them."""
    return [cell(mean["quality_vs_strongest"], pair["quality_vs_strongest"], orders),
            cell(mean["cost_vs_strongest"], pair["cost_vs_strongest"], orders),
            cell(mean["gap"], pair["gap"], orders, "+.3f")]


def _md_cell(mean: float, pair: Sequence[float], orders: int, fmt: str = ".3f") -> str:
    if not math.isfinite(mean):
        return "-"
    if orders < 2:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{pair[0]:{fmt}}–{pair[1]:{fmt}}]"


def markdown_tables(report: dict[str, Any]) -> str:
    """A report as the tables of a results page: every window, the learning phase and the live
    calls after it, the prior and the frozen map (overall and per source) beside the baselines,
    and the targets; each figure the mean over orders with [lowest–highest] beside it."""
    s = report["summary"]
    k = s["orders"]
    names = "task names sent" if report.get("with_task", True) else "task names withheld"
    lines = [f"**{report['source']}**, tiers {', '.join(report['tiers'])}, prior "
             f"`{report['prior']}`, {names}; {report['learn']} outcomes learned, "
             f"{report['score']} calls scored, "
             + (f"{k} orders (mean [lowest–highest] over orders)" if k > 1 else "1 order"),
             "", "| window | outcomes | quality / strongest | cost / strongest | pred - real "
             "| length quality | random quality |", "|---|---|---|---|---|---|---|"]
    rows = [(str(i), f"{w['mean']['outcomes']:.0f}", w["mean"], w["range"])
            for i, w in enumerate(s.get("windows", []), 1)]
    rows.append(("all", str(report["learn"]), s["learning"], s["ranges"]["learning"]))
    rows += [(source, "", both["mean"], both["range"])
             for source, both in s.get("learning_by_source", {}).items()]
    if "after" in s:
        rows.append(("after, live", f"{report['score']} scored", s["after"],
                     s["ranges"]["after"]))
        rows += [(f"after, {source}", "", both["mean"], both["range"])
                 for source, both in s.get("after_by_source", {}).items()]
    for name, outcomes, m, r in rows:
        baselines = [_md_cell(m[key], r[key], k) if key in m else "-"
                     for key in ("length_quality", "random_quality")]
        lines.append(f"| {name} | {outcomes} | "
                     + " | ".join(_live_cells(m, r, k, _md_cell) + baselines) + " |")
    lines += ["", "| scored calls | state | APGR | scores APGR | default quality | default cost "
              "| pred - real | length APGR | length quality | random quality | category ceiling |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = [("all", s["prior"], s["frozen"], s["ranges"]["prior"], s["ranges"]["frozen"])]
    groups += [(src, both["prior"], both["frozen"], s["by_source_ranges"][src]["prior"],
                s["by_source_ranges"][src]["frozen"]) for src, both in s["by_source"].items()]
    for name, prior, frozen, prior_r, frozen_r in groups:
        for state, m, r in (("prior", prior, prior_r), ("frozen", frozen, frozen_r)):
            cells = [_md_cell(m[key], r[key], k) for key in
                     ("apgr", "scores_apgr", "quality_vs_strongest", "cost_vs_strongest")]
            cells.append(_md_cell(m["gap"], r["gap"], k, "+.3f"))
            cells += [_md_cell(m[key], r[key], k) if key in m else "-" for key in
                      ("length_apgr", "length_quality", "random_quality", "category_ceiling")]
            lines.append(f"| {name} | {state} | " + " | ".join(cells) + " |")
    lines += ["", "| target | met | figure (mean [lowest, highest]) |", "|---|---|---|"]
    for check in target_checks(s, report.get("with_task", True)):
        verdict = {True: "met", False: "**not met**", None: "no figure"}[check["met"]]
        lines.append(f"| {check['target']} | {verdict} | {check['figure']} |")
    return "\n".join(lines)


__all__ = ["format_replay", "markdown_tables", "prior_apgr", "read_report", "summarise",
           "target_checks"]
