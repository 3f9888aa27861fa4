"""Serving model versus candidate: off-policy on held-out logged calls, and on public test splits.

Both models are scored through the service's own path (view -> embedding -> `RouterModel.scores`
-> `decision.policy.decide` at the configured knob), so the comparison is of what each would do
in production, task rules and context limits included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.config import Settings
from router.decision.artifact import RouterModel
from router.decision.features import CallView
from router.decision.policy import CallFacts, decide
from router.errors import RouterError
from training.embed_cache import EmbeddingCache
from training.ingest import load_outcomes
from training.labels import tier_table, views_of
from training.loop.offpolicy import paired_dr_ci, policy_value, tier_means
from training.selection import Candidate, pair_apgrs


def recipe(model: RouterModel) -> Candidate:
    """The head recipe in a model's metadata, so the candidate is fitted the same way."""
    head = dict(model.metadata.get("head") or {})
    if "name" not in head:
        raise RouterError("the serving model's metadata.json has no 'head' recipe; retrain "
                          "needs a model made by `tier-router train`")
    name = str(head.pop("name"))
    return Candidate(name, head, numeric=model.numeric_features)


def scores_in_config_order(
    model: RouterModel, embeddings: np.ndarray, views: list[CallView], settings: Settings
) -> np.ndarray:
    raw = model.scores(embeddings, views)
    missing = [t for t in settings.tier_names if t not in model.tiers]
    if missing:
        raise RouterError(f"model {model.version} has no scores for config tiers {missing}")
    return raw[:, [model.tiers.index(t) for t in settings.tier_names]]


def choices(scores: np.ndarray, facts: Sequence[CallFacts], targets: Sequence[float],
            settings: Settings) -> np.ndarray:
    """Tier index `decide` picks for each call."""
    names = settings.tier_names
    out = np.empty(len(facts), dtype=np.intp)
    for i, (row, fact, target) in enumerate(zip(scores, facts, targets, strict=True)):
        named = dict(zip(names, (float(s) for s in row), strict=True))
        out[i] = names.index(decide(named, settings.tiers, float(target), fact,
                                    settings.task_rules).tier)
    return out


def cost_matrix(tokens: Sequence[int], settings: Settings) -> np.ndarray:
    out = settings.expected_output_tokens
    return np.array([[t.estimate_cost(int(n), out) for t in settings.tiers] for n in tokens])


def _logged_facts(calls: pd.DataFrame, settings: Settings) -> list[CallFacts]:
    facts = []
    for row in calls.itertuples(index=False):
        forced = row.decided_tier if row.reason == "forced" else None
        facts.append(CallFacts(
            tokens_in=int(row.estimated_tokens_in), has_tools=bool(row.has_tools),
            expected_tokens_out=settings.expected_output_tokens,
            task=row.task if isinstance(row.task, str) else None, forced_tier=forced))
    return facts


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
    views = views_of(holdout)
    embeddings = cache.embed([v.text for v in views], progress=False)
    facts = _logged_facts(holdout, settings)
    targets = [settings.quality_target if pd.isna(q) else float(q)
               for q in holdout["quality_target"]]
    reward = holdout["quality"].to_numpy(float)
    logged = np.array([names.index(t) for t in holdout["tier"]])
    propensity = holdout["propensity"].to_numpy(float)
    q_hat = np.tile(q_hat_row, (len(holdout), 1))
    cost = cost_matrix([f.tokens_in for f in facts], settings)
    picks = {
        who: choices(scores_in_config_order(model, embeddings, views, settings), facts, targets,
                     settings)
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
    facts = [CallFacts(tokens_in=v.tokens_in, expected_tokens_out=settings.expected_output_tokens,
                       task=t if isinstance(t, str) else None)
             for v, t in zip(views, test.prompts["task"], strict=True)]
    cost = cost_matrix([f.tokens_in for f in facts], settings)
    rows = np.arange(len(test))
    out: dict[str, Any] = {"prompts": int(len(test))}
    for who, model in (("serving", serving), ("candidate", candidate)):
        scores = scores_in_config_order(model, embeddings, views, settings)
        pick = choices(scores, facts, [settings.quality_target] * len(facts), settings)
        apgrs = pair_apgrs(scores, test.labels, settings.tier_names)
        out[who] = {
            "apgr": apgrs,
            "apgr_mean": float(np.mean(list(apgrs.values()))) if apgrs else float("nan"),
            "quality": float(np.nanmean(test.labels[rows, pick])),
            "cost_usd": float(cost[rows, pick].mean()),
        }
    return out
