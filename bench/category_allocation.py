"""Where a map that knows each category's true quality could spend 5% of the strong tier's
quality: per category, or pooled over the traffic.

Offline and in-sample, on each two-tier source's train split (the replay's traffic; no test
split, no service): each category's mean label on the cheap and the strong tier is taken as
known (an oracle for both rules, so the comparison is between the rules, not the estimates).

* **per category** (the learned map's target): every category keeps 95% of its own strong-tier
  quality, so a share ``p = 0.05 q_s / (q_s - q_w)`` of its calls goes to the cheap tier;
* **pooled** (the issue's target is the traffic's overall quality): the cheap tier goes to the
  categories with the smallest absolute gap ``q_s - q_w`` first, until the traffic as a whole
  keeps 95% of always-strong's quality;
* the **category ceiling** of both orderings: APGR when categories move to the strong tier by
  absolute gap (what APGR rewards) and by relative ratio ``q_w / q_s`` (what a relative
  ``quality_target`` sweeps through).

Cost is the share of always-strong's bill at the config's input-price ratio with equal tokens
per call (an estimate: the replay itself prices each call's own tokens).

    PYTHONPATH=. .venv/bin/python bench/category_allocation.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from router.config import load_settings
from training.ingest import load_outcomes
from training.labels import tier_table
from training.traffic.replay_metrics import curve_stats

PAIRS = {"routerbench": ("medium", "large"), "alpacaeval": ("medium", "large"),
         "llmrouter": ("small", "medium")}
KEEP = 0.95


def per_category_share(weights: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> float:
    """Share of calls on the cheap tier when every category keeps KEEP of its strong quality."""
    gap = np.maximum(strong - weak, 1e-9)
    return float(np.sum(weights * np.minimum(1.0, (1 - KEEP) * strong / gap)))


def pooled_share(weights: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> float:
    """Share of calls on the cheap tier when the traffic as a whole keeps KEEP of always-strong's
    quality, the smallest absolute gaps spent first."""
    budget, share = (1 - KEEP) * float(np.sum(weights * strong)), 0.0
    for c in np.argsort(strong - weak, kind="stable"):
        loss = weights[c] * max(strong[c] - weak[c], 0.0)
        take = 1.0 if loss <= budget else budget / loss
        share, budget = share + weights[c] * take, budget - loss * take
        if budget <= 0:
            break
    return share


def ordered_apgr(labels: np.ndarray, cats: np.ndarray, order: list[str]) -> float:
    picks = np.array([np.where(np.isin(cats, order[:j]), 1, 0) for j in range(len(order) + 1)])
    return curve_stats(picks, labels, np.ones_like(labels))["apgr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    settings = load_settings(None)
    price = {t.name: t.input_price_per_m for t in settings.tiers}
    outcomes, _ = load_outcomes(args.data_dir, [])
    table = tier_table(outcomes, settings)
    prompts = table.prompts
    print("| source (cheap/strong) | categories | per category: cheap share, cost | pooled: "
          "cheap share, cost | ceiling by gap | ceiling by ratio |")
    print("|---|---|---|---|---|---|")
    for source, (weak, strong) in PAIRS.items():
        rows = ((prompts["dataset"] == source) & (prompts["split"] == "train")).to_numpy()
        y = table.labels[rows][:, [table.tiers.index(weak), table.tiers.index(strong)]]
        known = ~np.isnan(y).any(axis=1)
        y, cats = y[known], prompts["task"].to_numpy()[rows][known].astype(str)
        names = sorted(set(cats))
        w = np.array([np.mean(cats == c) for c in names])
        qw = np.array([y[cats == c, 0].mean() for c in names])
        qs = np.array([y[cats == c, 1].mean() for c in names])
        ratio = price[weak] / price[strong]
        per, pooled = per_category_share(w, qw, qs), pooled_share(w, qw, qs)
        by_gap = [names[i] for i in np.argsort(-(qs - qw), kind="stable")]
        by_ratio = [names[i] for i in np.argsort(qw / qs, kind="stable")]
        print(f"| {source} ({weak}/{strong}) | {len(names)} | {per:.3f}, "
              f"{per * ratio + 1 - per:.3f} | {pooled:.3f}, {pooled * ratio + 1 - pooled:.3f} | "
              f"{ordered_apgr(y, cats, by_gap):.3f} | {ordered_apgr(y, cats, by_ratio):.3f} |")


if __name__ == "__main__":
    main()
