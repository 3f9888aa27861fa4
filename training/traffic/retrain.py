"""`tier-router retrain`, top to bottom: store, split, labels, embeddings, fit, compare, save.

1. Read every outcome in the trace store that kept its text (``store.prompt_storage: full``)
   or what the classifier saw (``store.feature_storage: embedding``, the default); rows whose
   features came from another embedder or feature version are skipped and counted.
2. Hold out the most recent ``promotion.holdout_fraction`` of *routed* calls (time order, so
   the comparison is on traffic newer than anything the candidate learned from).
3. Build the training table: logged outcomes are partial information (one tier per call),
   weighted by 1/propensity; optionally mixed with the public data's train split.
4. Fit a candidate with the serving model's own recipe (head and features, from its
   metadata) through the training pipeline's `fit_final`, on the serving model's encoder.
5. Compare serving model and candidate off-policy on the held-out calls (IPS, SNIPS, DR; see
   `training.traffic.offpolicy`) and, with ``--data-dir``, on the public test splits (APGR, quality
   and cost at the configured knob). Write the candidate and ``retrain_report.json``;
   `tier-router promote` reads that report.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.config import Settings
from router.decision.artifact import load_model, save_model
from router.decision.encoders.base import DIMENSION, MODEL_NAME, Embedder
from router.decision.features import numbers_of
from router.errors import RouterError
from router.traces.rows import stored_features
from router.traces.store import TraceStore
from training.adapters import outcome_frame
from training.embed_cache import (
    EmbeddingCache,
    Featurised,
    featurise,
    model_backend,
    training_embedder,
)
from training.ingest import last_user_text, load_outcomes
from training.labels import PromptTable, tier_table
from training.selection import head_recipe
from training.traffic.compare import offpolicy_report, public_report
from training.train import fit_final

log = logging.getLogger(__name__)

REPORT_FILE = "retrain_report.json"
LOGGED = "logged"


def retrain(
    *,
    settings: Settings,
    out: Path,
    cache_dir: Path,
    data_dir: Path | None = None,
    public_sources: Sequence[str] | None = None,
    mix_public: bool = False,
    since: float | None = None,
    seed: int = 0,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Fit a candidate at `out` from the trace store, compare it, write and return its report.

    `data_dir` adds the public test splits (of `public_sources`, default all) to the
    comparison, and with `mix_public` their train splits to the training rows; `since` (epoch
    seconds) skips older calls; `embedder` replaces the serving model's encoder (tests).
    """
    serving = load_model(settings.model_dir)
    embedder = embedder or training_embedder(settings, model_backend(serving.metadata))
    logged = logged_calls(settings, since, embedder.name, embedder.dimension)
    train_calls, holdout = split_by_time(logged, settings.promotion.holdout_fraction)
    log.info("logged calls with text or features: %d (train %d, held out %d)", len(logged),
             len(train_calls), len(holdout))

    featured = (train_calls["stored_embedding"].notna() if not train_calls.empty
                else pd.Series(dtype=bool))
    frames = [outcomes_of(train_calls[~featured])] if len(train_calls) else []
    if data_dir is not None and mix_public:
        public, _ = load_outcomes(data_dir, [], sources=public_sources or None)
        frames.append(public[public["split"] == "train"])
    logged_settings = with_logged_tiers(settings)
    table = tier_table(pd.concat(frames, ignore_index=True), logged_settings) if frames else None
    stored = stored_table(train_calls[featured], logged_settings) if len(train_calls) else None
    if (table is None or len(table) == 0) and (stored is None or len(stored.table) == 0):
        raise RouterError("no training rows: the store has no labelled calls with text or "
                          "stored features")

    cache = EmbeddingCache(cache_dir, embedder)
    parts = [featurise(table, cache)[0]] if table is not None and len(table) else []
    data = concat_featurised([*parts, *([stored] if stored is not None else [])])
    table = data.table
    candidate_recipe = head_recipe(serving.metadata)
    fitted = fit_final(data, candidate_recipe, seed)
    version = f"retrain-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{candidate_recipe.name}"
    save_model(
        out, fitted.head, fitted.features, router_version=version,
        head=candidate_recipe.as_metadata(),
        embedder_backend=cache.embedder.name, seed=seed,
        parent_router_version=serving.version,
        training_prompts=int(len(table)),
        training_prompts_by_source=table.prompts["source"].value_counts().to_dict(),
        logged_calls={"train": int(len(train_calls)), "holdout": int(len(holdout))},
    )
    candidate = load_model(out)

    report: dict[str, Any] = {
        "serving": {"model_dir": str(settings.model_dir), "router_version": serving.version},
        "candidate": {"model_dir": str(out), "router_version": candidate.version},
        "logged": {"calls": int(len(logged)), "train": int(len(train_calls)),
                   "holdout": int(len(holdout)),
                   "explored_share": float((logged["reason"] == "explore").mean())
                   if len(logged) else 0.0},
        "training_prompts": int(len(table)),
        "offpolicy": offpolicy_report(serving, candidate, train_calls, holdout, settings, cache),
        "public": (public_report(serving, candidate, data_dir, public_sources,
                                 settings, cache) if data_dir is not None else None),
        "promotion": settings.promotion.model_dump(),
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, default=float) + "\n")
    log.info("wrote %s", out / REPORT_FILE)
    return report


def logged_calls(
    settings: Settings, since: float | None = None, embedder: str = MODEL_NAME,
    dimension: int = DIMENSION,
) -> pd.DataFrame:
    """One row per stored outcome that kept its text or usable features, oldest first.

    Rows with features of another embedder family or feature version are skipped, counted
    and logged; a row with text is always usable. Stored features are in `stored_embedding`
    (float32) and `stored_view` (a `CallView` without text), None for text rows.
    """
    store = TraceStore(settings.store).open()
    try:
        rows = list(store.outcome_rows(since))
    finally:
        store.close()
    usable, skipped = usable_rows(rows, embedder, dimension)
    if rows and not usable:
        raise RouterError(
            f"none of the {len(rows)} stored outcomes kept its prompt or usable features "
            f"({dict(skipped)}): retraining needs store.feature_storage: embedding (the "
            "default) or store.prompt_storage: full"
        )
    if skipped:
        log.warning("%d of %d outcomes are left out: %s", sum(skipped.values()), len(rows),
                    dict(skipped))
    frame = pd.DataFrame(usable)
    if frame.empty:
        return frame.reindex(columns=["t", "decision_id", "reason", "tier", "quality",
                                      "stored_embedding", "stored_view"])
    frame["messages"] = [json.loads(m) if m else None for m in frame["messages"]]
    frame["propensity"] = pd.to_numeric(frame["propensity"]).fillna(1.0)
    frame["has_tools"] = [bool(json.loads(f).get("n_tools")) if f else False
                          for f in frame["features"]]
    return frame.sort_values("t", kind="stable").reset_index(drop=True)


def usable_rows(
    rows: Sequence[dict[str, Any]], embedder: str, dimension: int
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Rows with text or compatible stored features, and why each other row was skipped."""
    usable, skipped = [], Counter[str]()
    for row in rows:
        if row["quality"] is None:
            skipped["no quality label (outcome-only feedback)"] += 1
            continue
        features = stored_features(row, embedder, dimension)
        if isinstance(features, str):
            if not (row["prompt"] or row["messages"]):
                skipped[f"features of another {features.split(' ')[0]} ({features})"] += 1
                continue
            features = None
        if features is None and not (row["prompt"] or row["messages"]):
            skipped["no text and no features"] += 1
            continue
        has_text = bool(row["prompt"] or row["messages"])
        vector, view = features if features is not None and not has_text else (None, None)
        usable.append({**row, "stored_embedding": vector, "stored_view": view})
    return usable, skipped


def stored_table(calls: pd.DataFrame, settings: Settings) -> Featurised | None:
    """The training rows of calls kept as features only (no text): one per call."""
    if calls.empty:
        return None
    keys = [f"{LOGGED}:{d}" for d in calls["decision_id"]]
    frame = outcomes_of(calls).assign(prompt_id=keys)
    table = tier_table(frame, settings)
    order = {k: i for i, k in enumerate(keys)}
    rows = [order[k] for k in table.prompts["prompt_id"]]
    embeddings = np.stack([calls["stored_embedding"].iloc[i] for i in rows]).astype(np.float32)
    views = [calls["stored_view"].iloc[i] for i in rows]
    numeric = numbers_of(views)
    return Featurised(table, embeddings, numeric)


def concat_featurised(parts: Sequence[Featurised]) -> Featurised:
    tables = [p.table for p in parts]
    table = PromptTable(
        prompts=pd.concat([t.prompts for t in tables], ignore_index=True),
        labels=np.vstack([t.labels for t in tables]),
        weights=np.concatenate([t.weights for t in tables]), tiers=tables[0].tiers,
    )
    return Featurised(table, np.vstack([p.embeddings for p in parts]),
                      np.vstack([p.numeric for p in parts]))


def split_by_time(calls: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held out): the newest `fraction` of routed calls is held out."""
    if calls.empty:
        return calls, calls
    routed = calls["decision_id"].notna() & calls["reason"].notna()
    n_hold = int(round(routed.sum() * fraction))
    routed_index = calls.index[routed]
    held = calls.index.isin(routed_index[len(routed_index) - n_hold:])
    return calls[~held].reset_index(drop=True), calls[held].reset_index(drop=True)


def outcomes_of(calls: pd.DataFrame) -> pd.DataFrame:
    """Logged calls as outcome rows; the tier they were served in stands in for the model."""
    if calls.empty:
        return outcome_frame(pd.DataFrame())
    prompts = [p if p else last_user_text(m) for p, m in zip(calls["prompt"], calls["messages"],
                                                          strict=True)]
    frame = pd.DataFrame({
        "prompt_id": [f"{LOGGED}:{h or d}" for h, d in zip(calls["prompt_hash"],
                                                           calls["decision_id"], strict=True)],
        "prompt": prompts,
        "messages": list(calls["messages"]),
        "model": [f"{LOGGED}:{t}" for t in calls["tier"]],
        "quality": calls["quality"], "cost_usd": calls["cost_usd"],
        "tokens_in": calls["tokens_in"], "tokens_out": calls["tokens_out"],
        "source": LOGGED, "dataset": LOGGED, "split": "train", "task": calls["task"],
        "propensity": calls["propensity"], "decision_id": calls["decision_id"],
    })
    return outcome_frame(frame)


def with_logged_tiers(settings: Settings) -> Settings:
    """Settings whose tiers also claim the `logged:<tier>` stand-in model names."""
    tiers = [t.model_copy(update={"training_models": [*t.training_models, f"{LOGGED}:{t.name}"]})
             for t in settings.tiers]
    return settings.model_copy(update={"tiers": tiers})


def format_report(report: dict[str, Any]) -> str:
    """The report's numbers as the few lines `tier-router retrain` prints."""
    lines = [f"logged calls {report['logged']['calls']} (train {report['logged']['train']}, "
             f"held out {report['logged']['holdout']}, explored "
             f"{report['logged']['explored_share']:.1%})"]
    off = report["offpolicy"]
    for who in ("serving", "candidate"):
        v = off[who]
        lines.append(f"off-policy {who:9s} DR {v['dr']:.4f}  IPS {v['ips']:.4f}  SNIPS "
                     f"{v['snips']:.4f}  support {v['support']:.1%}  cost/call "
                     f"${v['cost_usd']:.6f}")
    d = off["dr_difference"]
    lines.append(f"DR candidate - serving {d['mean']:+.4f} (95% CI {d['low']:+.4f} .. "
                 f"{d['high']:+.4f})")
    if report["public"]:
        for who in ("serving", "candidate"):
            p = report["public"][who]
            lines.append(f"public    {who:9s} APGR {p['apgr_mean']:.4f}  quality "
                         f"{p['quality']:.4f}  cost/call ${p['cost_usd']:.6f}")
    return "\n".join(lines)
