"""The files of `tier-router evaluate` and its summary table, from the report dictionary.

report.json holds everything (NaN written as null, so any JSON reader takes it); per scope
with a curve, ``curve_<source>.csv`` (the router's sweep) and ``quality_cost_<source>.png``
(router and baselines); ``reliability.png`` for the router's pooled calibration. Leave-one-
dataset-out scopes get the same files with a ``lodo_`` prefix.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.metrics import ReliabilityTable
from training.plots import plot_quality_cost, plot_reliability
from training.report import ROUTER

SCOPES = (("in-dist", "in_distribution", ""), ("lodo", "lodo", "lodo_"))
ALL_TIERS = "all tiers"
SUMMARY_COLUMNS = (
    "scope", "source", "pair", "method", "apgr", "cpt50", "cpt80", "savings95", "reach",
)
NUMBERS = SUMMARY_COLUMNS[4:]


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (scope, source, pair, method): APGR, CPT(50%), CPT(80%), savings@95%.

    Savings (and reach, the curve's best quality over the strongest tier's) belong to the
    three-tier curve, not to a pair, so they sit on rows whose pair is "all tiers".
    Leave-one-dataset-out adds a "mean" source: the mean over held-out groups.
    """
    rows: list[dict[str, Any]] = []
    for scope, key, _ in SCOPES:
        for source, section in (report.get(key) or {}).items():
            rows += _scope_rows(scope, source, section)
    rows += _lodo_means([r for r in rows if r["scope"] == "lodo" and r["source"] != "all"])
    return rows


def _scope_rows(scope: str, source: str, section: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for pair, entry in section["pairs"].items():
        for method, m in entry["methods"].items():
            rows.append({"scope": scope, "source": source, "pair": pair, "method": method,
                         "apgr": m["apgr"], "cpt50": m["cpt50"], "cpt80": m["cpt80"],
                         "savings95": None, "reach": None})
    reach = section.get("reach") or {}
    for method, value in (section.get("savings_at_95") or {}).items():
        rows.append({"scope": scope, "source": source, "pair": ALL_TIERS, "method": method,
                     "apgr": None, "cpt50": None, "cpt80": None, "savings95": value,
                     "reach": reach.get(method)})
    return rows


def _lodo_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of every number over the held-out groups, per (pair, method).

    APGR and CPT are missing only where a pair has no gap to recover, so those groups are
    skipped; a missing saving means the method never reached 95% of the strongest tier's
    quality, a failure, so the mean saving is missing as soon as one group's is.
    """
    keys = list(dict.fromkeys((r["pair"], r["method"]) for r in rows))  # first-seen order
    out = []
    for pair, method in keys:
        same = [r for r in rows if (r["pair"], r["method"]) == (pair, method)]
        means = {c: _mean([r[c] for r in same], strict=c == "savings95") for c in NUMBERS}
        out.append({"scope": "lodo", "source": "mean", "pair": pair, "method": method, **means})
    return out


def _mean(values: list[Any], strict: bool) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite or (strict and len(finite) < len(values)):
        return None
    return float(np.mean(finite))


def format_summary(rows: list[dict[str, Any]]) -> str:
    """The summary rows as a fixed-width text table."""
    if not rows:
        return "(no pair or curve had enough prompts to measure)"
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in NUMBERS:
        frame[column] = frame[column].map(_cell)
    return frame.to_string(index=False)


def _cell(value: Any) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def json_ready(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays unwrapped, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_ready(v) for v in value]
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_outputs(report: dict[str, Any], out: Path) -> None:
    """report.json, the curve CSVs and the figures."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(json_ready(report), indent=1) + "\n")
    for _, key, prefix in SCOPES:
        for source, section in (report.get(key) or {}).items():
            if ROUTER not in section.get("curves", {}):
                continue
            name = prefix + slug(source)
            curve_frame(section).to_csv(out / f"curve_{name}.csv", index=False)
            plot_scope(section, out / f"quality_cost_{name}.png",
                       f"{source} ({'held out' if prefix else 'test split'})")
    pooled = report["in_distribution"]["all"]["calibration"]
    plot_reliability(reliability_tables(pooled), out / "reliability.png",
                     "Router reliability per tier (all test rows)")


def slug(source: str) -> str:
    """A file-name-safe form of a source name ("routerbench/mbpp" -> "routerbench_mbpp")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", source)


def curve_frame(section: dict[str, Any]) -> pd.DataFrame:
    """The router's sweep: target, cost, quality, share per tier, realised success."""
    rows = []
    for r in section["curves"][ROUTER]:
        shares = {f"share_{t}": s for t, s in r["share"].items()}
        rows.append({"target": r["step"], "cost": r["cost"], "quality": r["quality"], **shares,
                     "realised_success": r["success"]})
    return pd.DataFrame(rows)


def plot_scope(section: dict[str, Any], path: Path, title: str) -> Path:
    """Quality against cost: router, kNN, length, oracle and random mixture, tiers as points."""
    curves = {
        name: ([r["cost"] for r in records], [r["quality"] for r in records])
        for name, records in section["curves"].items()
    }
    curves["random mixture"] = (section["random"]["cost"], section["random"]["quality"])
    points = {t: (v["cost"], v["quality"]) for t, v in section["curve_tiers"].items()}
    return plot_quality_cost(curves, points, path, title)


def reliability_tables(calibration: dict[str, Any]) -> dict[str, ReliabilityTable]:
    """The report's reliability tables back as `ReliabilityTable`s, for plotting."""
    return {
        tier: ReliabilityTable(
            np.asarray(c["bin_centers"], float), np.asarray(c["mean_predicted"], float),
            np.asarray(c["mean_realised"], float), np.asarray(c["counts"]),
        )
        for tier, c in calibration.items()
    }
