"""PNG figures for `tier-router evaluate`: quality against cost, and reliability diagrams.

Figures are built with matplotlib's object API (`Figure` + the Agg canvas), never pyplot, so
nothing opens a window, no global backend is switched and no figure leaks between calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.metrics import ReliabilityTable

__all__ = ["plot_quality_cost", "plot_reliability"]

Curve = tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png", dpi=120, bbox_inches="tight")
    return out


def plot_quality_cost(
    curves: Mapping[str, Curve],
    points: Mapping[str, tuple[float, float]],
    path: str | os.PathLike[str],
    title: str = "Quality against cost",
    *,
    log_cost: bool = False,
) -> Path:
    """Save quality against mean cost per prompt: router and baseline curves, tier points.

    `curves` maps a name (router, "random mixture", "oracle", ...) to (costs, qualities);
    each is drawn sorted by cost. `points` maps a single-tier name to (cost, quality) and is
    drawn as a labelled marker. `log_cost` helps when tier prices span orders of magnitude.
    """
    fig = Figure(figsize=(7.0, 5.0))
    ax = fig.subplots()
    for name, (costs, qualities) in curves.items():
        c, q = np.asarray(costs, dtype=float), np.asarray(qualities, dtype=float)
        order = np.argsort(c, kind="stable")
        ax.plot(c[order], q[order], marker=".", linestyle="-", label=name)
    for name, (cost, quality) in points.items():
        ax.scatter([cost], [quality], marker="D", color="black", zorder=3)
        ax.annotate(
            name,
            (cost, quality),
            textcoords="offset points",
            xytext=(6, -10),
            fontsize=9,
        )
    if log_cost:
        ax.set_xscale("log")
    ax.set_xlabel("Mean cost per prompt (USD)")
    ax.set_ylabel("Mean realised quality")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(loc="lower right")
    return _save(fig, path)


def plot_reliability(
    tables: Mapping[str, ReliabilityTable],
    path: str | os.PathLike[str],
    title: str = "Reliability per tier",
) -> Path:
    """Save a reliability diagram: mean realised against mean predicted per bin, per tier.

    Points on the diagonal mean the scores can be compared with `quality_target` at face
    value; empty bins are skipped.
    """
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="perfect calibration")
    for name, table in tables.items():
        filled = np.asarray(table.counts) > 0
        ax.plot(
            np.asarray(table.mean_predicted)[filled],
            np.asarray(table.mean_realised)[filled],
            marker="o",
            label=f"{name} (n={int(np.sum(table.counts))})",
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("Mean predicted P(tier answers well)")
    ax.set_ylabel("Mean realised quality")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    return _save(fig, path)
