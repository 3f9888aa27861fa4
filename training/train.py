"""`tier-router train`, top to bottom: data, labels, embeddings, selection, fit, save.

`train` takes the loaded config and typed options (the CLI parses and loads them). Every step
is one call into a small module; the same `router` code (features, embedder,
classifier) runs here and in the service, so what is trained is what is served.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from router.config import Settings
from router.decision.artifact import RouterModel, save_model
from router.decision.encoders.base import Embedder
from router.errors import RouterError
from router.schemas import KNOB_MEANING, QUALITY_TARGET_DOC
from training.embed_cache import (
    DEFAULT_TRAINING_BACKEND,
    EmbeddingCache,
    Featurised,
    featurise,
    training_embedder,
    warn_duplicates,
)
from training.ingest import load_outcomes
from training.labels import tier_table
from training.selection import Candidate, build_head, leave_one_group_out

log = logging.getLogger(__name__)

# Groups held out in turn for model selection: each benchmark that has a tier contrast.
SELECTION_GROUPS = (
    "routerbench/arc_challenge", "routerbench/mbpp", "routerbench/winogrande",
    "llmrouter", "alpacaeval",
)


def train(
    *,
    settings: Settings,
    out: Path,
    cache_dir: Path,
    data_dir: Path | None = None,
    traces: Sequence[Path] = (),
    seed: int = 0,
    strict: bool = False,
    backend: str = DEFAULT_TRAINING_BACKEND,
    embedder: Embedder | None = None,
    selection_groups: Sequence[str] | None = SELECTION_GROUPS,
) -> Path:
    """Train a model directory at `out` from the train split of the data; returns `out`.

    `data_dir` is the public data folder and `traces` TRACES.md files (at least one of the
    two); `strict` makes a bad trace line fatal; `backend` picks the encoder, unless
    `embedder` gives one (tests, experiments); its name is recorded in the metadata.
    `selection_groups` are the sources held out in turn to choose the head (None: every
    source); none of them in the data is an error naming them.
    """
    outcomes, data_files = load_outcomes(data_dir, traces, strict=strict)
    table = tier_table(outcomes, settings)
    rows = table.subset((table.prompts["split"] == "train").to_numpy())
    log.info("training prompts: %d (of %d)", len(rows), len(table))
    if len(rows) == 0:
        raise RouterError(f"no training prompts: {len(table)} prompts map to a configured tier "
                          "and none of them is in the train split (see the log lines above)")
    embedder = embedder or training_embedder(settings, backend)
    data, _ = featurise(rows, EmbeddingCache(cache_dir, embedder))
    warn_duplicates(data)
    sources = rows.prompts["source"].to_numpy()
    selection = leave_one_group_out(
        data.embeddings, data.numeric, rows.labels, rows.weights, sources, rows.tiers,
        eval_groups=selection_groups, seed=seed,
    )
    model = fit_final(data, selection.best, seed)
    log.info("selected %s by leave-one-dataset-out", selection.best.name)
    save_model(
        out, model.head, model.features,
        router_version=f"{out.name}-{selection.best.name}-seed{seed}",
        head=selection.best.as_metadata(),
        embedder_backend=embedder.name,
        seed=seed,
        data=data_files,
        training_prompts=int(len(rows)),
        training_prompts_by_source=rows.prompts["source"].value_counts().to_dict(),
        selection=selection.table,
        metrics={"lodo_mean_apgr": selection.means,
                 "lodo_mean_pair_apgr": selection.pair_means},
        quality_target={"meaning": KNOB_MEANING, "doc": QUALITY_TARGET_DOC,
                        "default": settings.quality_target},
    )
    pd.DataFrame(selection.table).to_csv(out / "selection.csv", index=False)
    log.info("wrote %s", out)
    return out


def fit_final(data: Featurised, candidate: Candidate, seed: int) -> RouterModel:
    """`candidate`'s head fitted on every row of `data` (train: the winner of selection)."""
    head = build_head(candidate, data.table.tiers, seed)
    head.fit(
        candidate.features.assemble(data.embeddings, data.numeric), data.table.labels,
        data.table.weights, groups=data.table.prompts["source"].to_numpy(),
    )
    meta: dict[str, Any] = {"router_version": candidate.name}
    return RouterModel(head=head, features=candidate.features, metadata=meta)
