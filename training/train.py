"""`tier-router train`, top to bottom: config, data, labels, embeddings, selection, fit, save.

Every step is one call into a small module; the same `router` code (features, embedder,
classifier) runs here and in the service, so what is trained is what is served.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.config import Settings, load_settings
from router.decision.artifact import RouterModel, assemble_features, save_model
from router.decision.classifier import TierClassifier
from router.decision.encoders.backends import make_embedder
from router.decision.encoders.base import Embedder
from training.embed_cache import EmbeddingCache
from training.ingest import load_outcomes
from training.labels import PromptTable, tier_table, views_of
from training.selection import Candidate, leave_one_group_out

log = logging.getLogger(__name__)

# Groups held out in turn for model selection: each benchmark that has a tier contrast.
SELECTION_GROUPS = (
    "routerbench/arc_challenge", "routerbench/mbpp", "routerbench/winogrande",
    "llmrouter", "alpacaeval",
)


@dataclass
class Featurised:
    """A prompt table with its embeddings and cheap features, rows aligned."""

    table: PromptTable
    embeddings: np.ndarray
    numeric: np.ndarray


def run_training(args: argparse.Namespace) -> Path:
    settings = load_settings(args.config)
    outcomes, data_files = load_outcomes(args.data_dir, args.traces, strict=args.strict)
    table = tier_table(outcomes, settings)
    train = table.subset((table.prompts["split"] == "train").to_numpy())
    log.info("training prompts: %d (of %d)", len(train), len(table))
    embedder = training_embedder(settings, args.backend)
    data = featurise(train, EmbeddingCache(args.cache_dir, embedder))
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
        head={"name": selection.best.name, **selection.best.params},
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


def training_embedder(settings: Settings, backend: str) -> Embedder:
    """The given backend, without the serving LRU (the disk cache does that job here)."""
    return make_embedder(
        settings.embedder.model_copy(update={"cache_size": 0, "backend": backend})
    )


def featurise(table: PromptTable, cache: EmbeddingCache) -> Featurised:
    views = views_of(table.prompts)
    embeddings = cache.embed([v.text for v in views])
    numeric = assemble_features(np.empty((len(views), 0), np.float32), views, numeric=True)
    _warn_duplicates(embeddings, table)
    return Featurised(table, embeddings, numeric)


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


def _warn_duplicates(embeddings: np.ndarray, table: PromptTable) -> None:
    """Few-shot prompts whose views collapse to one embedding make in-domain metrics lie."""
    sources = table.prompts["source"].to_numpy()
    for source in np.unique(sources):
        rows = embeddings[sources == source]
        distinct = len(np.unique(rows.round(4), axis=0))
        if distinct < 0.9 * len(rows):
            log.warning("%s: %d prompts but only %d distinct embeddings", source, len(rows),
                        distinct)
