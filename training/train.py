"""`tier-router train`, top to bottom: config, data, labels, embeddings, selection, fit, save.

Every step is one call into a small module; the same `router` code (features, embedder,
classifier) runs here and in the service, so what is trained is what is served.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.config import load_settings
from router.decision.artifact import RouterModel, save_model
from router.decision.classifier import TierClassifier
from training.embed_cache import (
    EmbeddingCache,
    Featurised,
    featurise,
    training_embedder,
    warn_duplicates,
)
from training.ingest import load_outcomes
from training.labels import tier_table
from training.selection import Candidate, leave_one_group_out

log = logging.getLogger(__name__)

# Groups held out in turn for model selection: each benchmark that has a tier contrast.
SELECTION_GROUPS = (
    "routerbench/arc_challenge", "routerbench/mbpp", "routerbench/winogrande",
    "llmrouter", "alpacaeval",
)


def run_training(args: argparse.Namespace) -> Path:
    settings = load_settings(args.config)
    outcomes, data_files = load_outcomes(args.data_dir, args.traces, strict=args.strict)
    table = tier_table(outcomes, settings)
    train = table.subset((table.prompts["split"] == "train").to_numpy())
    log.info("training prompts: %d (of %d)", len(train), len(table))
    embedder = training_embedder(settings, args.backend)
    data, _ = featurise(train, EmbeddingCache(args.cache_dir, embedder))
    warn_duplicates(data)
    selection = leave_one_group_out(
        data.embeddings, data.numeric, train.labels, train.weights,
        train.prompts["source"].to_numpy(), train.tiers,
        eval_groups=[g for g in SELECTION_GROUPS if g in set(train.prompts["source"])],
        seed=args.seed,
    )
    model = fit_final(data, selection.best, args.seed)
    log.info("selected %s by leave-one-dataset-out", selection.best.name)
    save_model(
        args.out, model.classifier, model.numeric_features,
        router_version=f"{args.out.name}-{selection.best.name}-seed{args.seed}",
        head=selection.best.as_metadata(),
        embedder_backend=embedder.name,
        seed=args.seed,
        data=data_files,
        training_prompts=int(len(train)),
        training_prompts_by_source=train.prompts["source"].value_counts().to_dict(),
        selection=selection.table,
        metrics={"lodo_mean_apgr": selection.means},
    )
    pd.DataFrame(selection.table).to_csv(args.out / "selection.csv", index=False)
    log.info("wrote %s", args.out)
    return args.out


def fit_final(data: Featurised, candidate: Candidate, seed: int) -> RouterModel:
    features = (
        np.hstack([data.embeddings, data.numeric]) if candidate.numeric else data.embeddings
    )
    classifier = TierClassifier(tiers=data.table.tiers, random_state=seed, **candidate.params)
    classifier.fit(
        features, data.table.labels, data.table.weights,
        groups=data.table.prompts["source"].to_numpy(),
    )
    meta: dict[str, Any] = {"router_version": candidate.name}
    return RouterModel(classifier=classifier, numeric_features=candidate.numeric, metadata=meta)
