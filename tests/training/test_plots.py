"""The figures are written as real, non-empty PNG files. All data here are synthetic."""

import numpy as np

from training.metrics import random_mixture_curve, reliability_table
from training.plots import plot_quality_cost, plot_reliability

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == PNG_MAGIC


def test_plot_quality_cost_writes_png(tmp_path):
    # Synthetic tiers (cost USD, quality): small, medium, large.
    tiers = {"small": (0.001, 0.55), "medium": (0.004, 0.72), "large": (0.02, 0.85)}
    q_tiers = [q for _, q in tiers.values()]
    c_tiers = [c for c, _ in tiers.values()]
    router = ([0.002, 0.001, 0.006, 0.012], [0.62, 0.55, 0.78, 0.84])  # unsorted on purpose
    curves = {"router": router, "random mixture": random_mixture_curve(q_tiers, c_tiers, 11)}
    out = plot_quality_cost(curves, tiers, tmp_path / "figs" / "quality_cost.png", "synthetic")
    assert out == tmp_path / "figs" / "quality_cost.png"
    assert out.stat().st_size > 1000 and _is_png(out)

    log_out = plot_quality_cost(curves, tiers, tmp_path / "log.png", "log", log_cost=True)
    assert log_out.stat().st_size > 1000 and _is_png(log_out)


def test_plot_reliability_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.uniform(size=300)
    outcome = (rng.uniform(size=300) < prob).astype(float)  # synthetic, calibrated by design
    tables = {
        "small": reliability_table(prob, outcome, 10),
        "large": reliability_table(prob, np.clip(outcome + 0.2, 0, 1), 10),
    }
    out = plot_reliability(tables, str(tmp_path / "reliability.png"))
    assert out.stat().st_size > 1000 and _is_png(out)
