"""How high can APGR go on a benchmark at all? Routers that know more than any prompt can say.

    .venv/bin/python -m training.ceiling --data-dir ../shared/data

A prompt-only router estimates how hard a prompt is. On RouterBench every prompt was also
answered by nine other models, so the test split can be ranked with the *real* outcomes of those
nine: a router that knew, before routing, which of nine LLMs got this very prompt right. That
is far more than an embedding of the prompt can know, so its APGR is a practical ceiling for
any prompt-only router on the pair. Printed beside it: the router that knows only which
sub-benchmark a prompt came from (its train-split success rate), and random (0.5).

The weak and strong models are the representative models of two tiers (the first of the tier's
`training_models` in the config), as in the training labels.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from router.config import Settings, load_settings
from training.ingest import load_public
from training.metrics import bootstrap_ci
from training.selection import sweep_apgr

__all__ = ["ceiling_report", "ceiling_section", "outcome_matrix", "tier_model"]


def tier_model(settings: Settings, tier: str, models: Sequence[str]) -> str:
    """The tier's representative model among `models`: its first listed training model."""
    if tier not in settings.tier_names:
        raise ValueError(f"The tier must be one of {settings.tier_names}. Got {tier!r} instead.")
    for model in settings.tier(tier).training_models:
        if model in models:
            return model
    raise ValueError(f"The '{tier}' tier has no training model among {sorted(models)}.")


def outcome_matrix(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(prompts x models) quality, and each prompt's source and split, rows aligned."""
    quality = outcomes.pivot_table(index="prompt_id", columns="model", values="quality")
    meta = outcomes.drop_duplicates("prompt_id").set_index("prompt_id").loc[quality.index]
    return quality, meta[["source", "split"]]


def _jittered(values: np.ndarray, seed: int) -> np.ndarray:
    """Break ties at random so a tied block is routed like a random mixture, not by row order."""
    return values + 1e-9 * np.random.default_rng(seed).random(len(values))


def ceiling_report(
    quality: pd.DataFrame, meta: pd.DataFrame, weak: str, strong: str,
    seed: int = 0, n_boot: int = 200,
) -> list[dict[str, Any]]:
    """APGR of the outcome-informed and dataset-only routers on the test split, per source."""
    for name in (weak, strong):
        if name not in quality.columns:
            raise ValueError(f"The model {name!r} has no outcomes. Got {list(quality.columns)}.")
    both = quality[[weak, strong]].notna().all(axis=1).to_numpy()
    quality, meta = quality[both], meta[both]
    others = [m for m in quality.columns if m not in (weak, strong)]
    filled = quality[others].fillna(quality[others].mean()).to_numpy()
    sources = pd.get_dummies(meta["source"]).to_numpy(dtype=float)
    train = (meta["split"] == "train").to_numpy()
    q_weak, q_strong = quality[weak].to_numpy(), quality[strong].to_numpy()
    if train.sum() == 0 or (~train).sum() == 0:
        raise ValueError("The outcomes must have both a train and a test split.")

    features = np.hstack([filled, sources])
    fitted = LogisticRegression(C=1.0, max_iter=2000).fit(features[train], q_weak[train] > 0.5)
    base_rate = sources @ (sources[train].T @ q_weak[train] / sources[train].sum(axis=0))
    routers = {
        "outcomes of the other models (mean)": _jittered(filled.mean(axis=1), seed),
        "outcomes of the other models (fitted)": fitted.predict_proba(features)[:, 1],
        "sub-benchmark only": _jittered(base_rate, seed),
    }
    rows = []
    scopes = [("pooled", ~train)] + [
        (s, ~train & (meta["source"] == s).to_numpy()) for s in sorted(meta["source"].unique())
    ]
    for scope, mask in scopes:
        if not mask.any():
            continue
        row: dict[str, Any] = {"scope": scope, "prompts": int(mask.sum()),
                               "weak": float(q_weak[mask].mean()),
                               "strong": float(q_strong[mask].mean()), "others": len(others)}
        for name, score in routers.items():
            arrays = {"weak_score": score[mask], "q_weak": q_weak[mask], "q_strong": q_strong[mask]}
            row[name] = sweep_apgr(**arrays)
            row[f"{name} CI"] = bootstrap_ci(sweep_apgr, arrays, n_boot=n_boot, seed=seed)
        rows.append(row)
    return rows


def ceiling_section(
    outcomes: pd.DataFrame, settings: Settings, source: str = "routerbench", seed: int = 0,
    n_boot: int = 200,
) -> dict[str, Any] | None:
    """The ceiling rows of every tier pair the source has, for `tier-router evaluate`'s report,
    from the outcome rows it already loaded.

    None when the outcomes hold no such data set, so an evaluation on traces alone still runs.
    """
    rows = outcomes[outcomes["dataset"] == source]
    if rows.empty:
        return None
    quality, meta = outcome_matrix(rows)
    models = list(quality.columns)
    out: dict[str, Any] = {"source": source, "pairs": {}}
    names = settings.tier_names
    for weak_tier in names[:-1]:
        strong_tier = names[-1]  # the pairs RouteLLM's metrics are quoted for: each tier vs the top
        try:
            weak, strong = (tier_model(settings, t, models) for t in (weak_tier, strong_tier))
        except ValueError:
            continue
        out["pairs"][f"{weak_tier}/{strong_tier}"] = {
            "weak_model": weak, "strong_model": strong,
            "rows": ceiling_report(quality, meta, weak, strong, seed=seed, n_boot=n_boot),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--source", default="routerbench", help="a data set with many models")
    parser.add_argument("--weak", default="medium", help="the weak tier of the pair")
    parser.add_argument("--strong", default="large", help="the strong tier of the pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    settings = load_settings(args.config)
    quality, meta = outcome_matrix(load_public(args.data_dir, [args.source]))
    weak = tier_model(settings, args.weak, list(quality.columns))
    strong = tier_model(settings, args.strong, list(quality.columns))
    rows = ceiling_report(quality, meta, weak, strong, seed=args.seed)
    print(f"APGR on the {args.source} test split, {weak} ({args.weak}) vs {strong} ({args.strong}),"
          " 95% bootstrap CI in brackets")
    print(pd.DataFrame([_formatted(row) for row in rows]).to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _formatted(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if key.endswith(" CI"):
            continue
        if f"{key} CI" in row:
            low, high = row[f"{key} CI"]
            value = f"{value:.3f} [{low:.2f}, {high:.2f}]"
        elif isinstance(value, float):
            value = round(value, 3)
        out[key] = value
    return out


if __name__ == "__main__":
    raise SystemExit(main())
