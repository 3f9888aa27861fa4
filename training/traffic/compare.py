"""Serving model versus candidate: off-policy on held-out logged calls, and on public test splits.

Both models are scored through the service's own path (view -> embedding -> `RouterModel.scores`
-> `decision.policy.decide` at the configured knob, by `training.scoring` as in `evaluate`), so
the comparison is of what each would do in production, task rules and context limits included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.config import Settings
from router.decision.artifact import RouterModel
from router.decision.choice import CallFacts
from router.decision.features import CallView
from training.embed_cache import EmbeddingCache
from training.ingest import load_outcomes
from training.labels import tier_table, views_of
from training.scoring import decide_tiers, policy_choices, tier_costs
from training.selection import pair_apgrs
from training.traffic.offpolicy import paired_dr_ci, policy_value, tier_means


def _logged_facts(calls: pd.DataFrame, settings: Settings) -> list[CallFacts]:
    columns = ("estimated_tokens_in", "has_tools", "task", "reason", "decided_tier")
    facts = []
    for tokens_in, has_tools, task, reason, decided in zip(
        *(calls[column].tolist() for column in columns), strict=True
    ):
        facts.append(CallFacts(
            tokens_in=int(tokens_in), has_tools=bool(has_tools),
            expected_tokens_out=settings.expected_output_tokens,
            task=task if isinstance(task, str) else None,
            forced_tier=decided if reason == "forced" else None))
    return facts


def logged_features(
    calls: pd.DataFrame, cache: EmbeddingCache
) -> tuple[np.ndarray, list[CallView]]:
    """Embeddings and views of logged calls: stored ones where the store kept features
    (`stored_embedding`, `stored_view` columns of `retrain.logged_calls`), else from the text."""
    n = len(calls)
    if n == 0:
        return np.empty((0, cache.embedder.dimension), np.float32), []
    stored = (calls["stored_embedding"].notna().to_numpy() if "stored_embedding" in calls
              else np.zeros(n, bool))
    views: list[CallView | None] = [None] * n
    out = np.empty((n, cache.embedder.dimension), np.float32)
    text_rows = np.flatnonzero(~stored)
    if len(text_rows):
        text_views = views_of(calls.iloc[text_rows])
        out[text_rows] = cache.embed([v.text for v in text_views], progress=False)
        for i, view in zip(text_rows, text_views, strict=True):
            views[i] = view
    for i in np.flatnonzero(stored):
        out[i] = calls["stored_embedding"].iloc[i]
        views[i] = calls["stored_view"].iloc[i]
    return out, [v for v in views if v is not None]


def offpolicy_report(
    serving: RouterModel, candidate: RouterModel, train_calls: pd.DataFrame,
    holdout: pd.DataFrame, settings: Settings, cache: EmbeddingCache,
) -> dict[str, Any]:
    """IPS / SNIPS / DR of both models on the held-out routed calls, and the paired DR gap."""
    names = settings.tier_names
    q_hat_row = _reward_model(train_calls, names)
    if holdout.empty:
        empty = policy_value(np.empty(0), np.empty(0, int), np.empty(0, int), np.empty(0),
                             np.empty((0, len(names))), np.empty((0, len(names))), names)
        nan = float("nan")
        return {"serving": empty.as_dict(), "candidate": empty.as_dict(),
                "dr_difference": {"mean": nan, "low": nan, "high": nan},
                "reward_model": q_hat_row.tolist()}
    embeddings, views = logged_features(holdout, cache)
    facts = _logged_facts(holdout, settings)
    targets = [settings.quality_target if pd.isna(q) else float(q)
               for q in holdout["quality_target"]]
    reward = holdout["quality"].to_numpy(float)
    logged = np.array([names.index(t) for t in holdout["tier"]])
    propensity = holdout["propensity"].to_numpy(float)
    q_hat = np.tile(q_hat_row, (len(holdout), 1))
    cost = tier_costs([f.tokens_in for f in facts], settings)
    knob = np.asarray(targets, dtype=float)[None, :]
    picks = {
        who: decide_tiers(model.scores(embeddings, views, names), facts, knob, settings)[0]
        for who, model in (("serving", serving), ("candidate", candidate))
    }
    mean, low, high = paired_dr_ci(reward, logged, picks["serving"], picks["candidate"],
                                   propensity, q_hat)
    return {
        **{who: policy_value(reward, logged, pick, propensity, q_hat, cost, names).as_dict()
           for who, pick in picks.items()},
        "logged_policy": {"quality": float(reward.mean()),
                          "cost_usd": float(cost[np.arange(len(logged)), logged].mean())},
        "dr_difference": {"mean": mean, "low": low, "high": high},
        "reward_model": dict(zip(names, q_hat_row.tolist(), strict=True)),
    }


def _reward_model(train_calls: pd.DataFrame, names: list[str]) -> np.ndarray:
    known = train_calls[train_calls["tier"].isin(names)] if not train_calls.empty else train_calls
    if known.empty:
        return np.full(len(names), 0.5)
    logged = np.array([names.index(t) for t in known["tier"]])
    return tier_means(known["quality"].to_numpy(float), logged,
                      known["propensity"].to_numpy(float), len(names))


def public_report(
    serving: RouterModel, candidate: RouterModel, data_dir: Path,
    sources: Sequence[str] | None, settings: Settings, cache: EmbeddingCache,
) -> dict[str, Any]:
    """Both models on the public test splits: mean pair APGR, and quality/cost at the knob."""
    outcomes, _ = load_outcomes(data_dir, [], sources=list(sources) if sources else None)
    table = tier_table(outcomes, settings)
    test = table.subset((table.prompts["split"] == "test").to_numpy())
    views = views_of(test.prompts)
    embeddings = cache.embed([v.text for v in views])
    cost = tier_costs([v.tokens_in for v in views], settings)
    rows = np.arange(len(test))
    out: dict[str, Any] = {"prompts": int(len(test))}
    for who, model in (("serving", serving), ("candidate", candidate)):
        scores = model.scores(embeddings, views, settings.tier_names)
        (pick,) = policy_choices(scores, views, list(test.prompts["task"]), settings,
                                 np.array([settings.quality_target]))
        apgrs = pair_apgrs(scores, test.labels, settings.tier_names)
        out[who] = {
            "apgr": apgrs,
            "apgr_mean": float(np.mean(list(apgrs.values()))) if apgrs else float("nan"),
            "quality": float(np.nanmean(test.labels[rows, pick])),
            "cost_usd": float(cost[rows, pick].mean()),
        }
    return out
