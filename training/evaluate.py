"""`tier-router evaluate`, top to bottom: config, model, data, embeddings, scores, sweeps,
metrics, outputs. Each step is one call into a small module.

Evaluation rows are the ``test`` split of every public source (``data_dir``) and every row of
the ``traces`` files; the kNN baseline and ``lodo`` refits learn from the public ``train`` split
only. The router's curve is drawn by calling `decision.policy.decide` (through
`training.scoring`) for every prompt at every ``quality_target`` in ``TARGETS``, with the call's
estimated input tokens and, where a trace records one, its ``task`` (public data has none;
traces record no tools), so the curve is the service's own policy, task rules and context
limits included. Costs use the config's prices; see `training.report` for the definitions of
every number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router.config import Settings
from router.decision.artifact import RouterModel, load_model
from router.decision.encoders.base import Embedder
from router.decision.features import CallView
from router.errors import RouterError
from training.baselines import knn_scores, length_pseudo_scores, length_tokens
from training.ceiling import ceiling_section
from training.embed_cache import (
    EmbeddingCache,
    Featurised,
    embedding_backend,
    featurise,
    training_embedder,
)
from training.ingest import load_outcomes
from training.labels import PromptTable, tier_table
from training.outputs import summary_rows, write_outputs
from training.report import DEFINITIONS, EvalSet, concat_sets, scope_report, scopes_report
from training.scoring import TARGETS, policy_choices, tier_costs
from training.selection import Candidate, head_recipe
from training.train import SELECTION_GROUPS, fit_final

log = logging.getLogger(__name__)

def evaluate(
    *,
    settings: Settings,
    out: Path,
    cache_dir: Path,
    model_dir: Path | None = None,
    data_dir: Path | None = None,
    traces: Sequence[Path] = (),
    seed: int = 0,
    strict: bool = False,
    backend: str | None = None,
    bootstrap: int = 200,
    lodo: bool = False,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Evaluate a model directory (default: the config's), write the report to `out`, return it.

    `backend` defaults to the one the model was trained with; `embedder` replaces it (tests);
    `bootstrap` resamples give the confidence intervals; `lodo` adds leave-one-dataset-out.
    """
    started = time.perf_counter()
    model_dir = model_dir if model_dir is not None else settings.model_dir
    model = load_model(model_dir)
    outcomes, files = load_outcomes(data_dir, traces, strict, trace_split="test")
    table = tier_table(outcomes, settings)
    backend = backend or embedding_backend(model.metadata)
    cache = EmbeddingCache(cache_dir, embedder or training_embedder(settings, backend))
    data, views = featurise(table, cache)
    embedded = time.perf_counter()

    in_dist = in_distribution_set(data, views, model, settings, seed)
    report: dict[str, Any] = {
        "model_dir": str(model_dir),
        "router_version": model.version,
        "model_head": model.metadata.get("head"),
        "embedder_backend": backend if embedder is None else embedder.name,
        "data_files": files,
        "seed": seed,
        "bootstrap": bootstrap,
        "config": config_summary(settings),
        "definitions": DEFINITIONS,
        "in_distribution": scopes_report(in_dist, seed, bootstrap),
    }
    if lodo:
        report["lodo"] = lodo_report(data, views, settings, head_recipe(model.metadata),
                                     seed, bootstrap)
    if data_dir is not None:
        report["ceiling"] = ceiling_section(outcomes, settings, seed=seed, n_boot=bootstrap)
    report["summary"] = summary_rows(report)
    report["timings"] = {"embedding_s": round(embedded - started, 1),
                         "total_s": round(time.perf_counter() - started, 1)}
    write_outputs(report, out)
    log.info("wrote %s", out / "report.json")
    return report


def evaluation_table(
    data_dir: Path | None, traces: Sequence[Path], settings: Settings, strict: bool = False
) -> tuple[PromptTable, list[dict]]:
    """Public data (its own train/test splits) and trace rows (all marked test) as one table."""
    outcomes, files = load_outcomes(data_dir, traces, strict, trace_split="test")
    return tier_table(outcomes, settings), files


def evaluation_set(
    table: PromptTable,
    views: list[CallView],
    settings: Settings,
    learned: dict[str, np.ndarray],
) -> EvalSet:
    """Labels, config costs and every method's routing for the rows of `table`.

    `learned` maps a method name to its (n, T) scores; each is swept through the policy. The
    length heuristic's scores are added here, from the views (its curve is drawn per scope).
    """
    tasks = [t if isinstance(t, str) else None for t in table.prompts["task"]]
    length = length_tokens(views)
    n_tiers = len(settings.tiers)
    scores = {**learned, "length": length_pseudo_scores(length, n_tiers)}
    choices = {m: policy_choices(s, views, tasks, settings) for m, s in learned.items()}
    return EvalSet(
        tiers=list(settings.tier_names),
        sources=table.prompts["source"].to_numpy(dtype=str),
        quality=table.labels,
        cost=tier_costs([v.tokens_in for v in views], settings),
        scores=scores,
        choices=choices,
        steps={m: TARGETS for m in learned},
        length=length,
        default_target=settings.quality_target,
    )


def in_distribution_set(
    data: Featurised, views: list[CallView], model: RouterModel, settings: Settings, seed: int
) -> EvalSet:
    """The shipped model and a kNN router (fitted on the train split) on the test rows."""
    split = data.table.prompts["split"].to_numpy()
    test, train = split == "test", split == "train"
    if not test.any():
        raise RouterError("no evaluation rows: the data has no test split and no traces")
    return routers_set(data, views, model, train, test, settings, seed)


def routers_set(
    data: Featurised,
    views: list[CallView],
    model: RouterModel,
    train: np.ndarray,
    test: np.ndarray,
    settings: Settings,
    seed: int,
) -> EvalSet:
    """`model` and a kNN router fitted on the `train` rows, evaluated on the `test` rows."""
    test_views = [v for v, keep in zip(views, test, strict=True) if keep]
    learned = {"router": model.scores(data.embeddings[test], test_views,
                                     settings.tier_names)}
    if train.any():
        learned["knn"] = knn_scores(
            data.embeddings[train], data.table.labels[train], data.table.weights[train],
            data.embeddings[test], settings.tier_names, seed,
        )
    else:
        log.warning("no train split (no --data-dir): the kNN baseline is left out")
    return evaluation_set(data.table.subset(test), test_views, settings, learned)


def lodo_report(
    data: Featurised,
    views: list[CallView],
    settings: Settings,
    candidate: Candidate,
    seed: int,
    n_boot: int,
) -> dict[str, Any]:
    """Leave one dataset out: refit the model's head and kNN without it, score its test rows."""
    sources = data.table.prompts["source"].to_numpy()
    split = data.table.prompts["split"].to_numpy()
    sets = {}
    for group in SELECTION_GROUPS:
        test = (split == "test") & (sources == group)
        if not test.any():
            continue
        log.info("leave-one-dataset-out: %s (%d test prompts)", group, int(test.sum()))
        train = (split == "train") & (sources != group)
        sets[group] = heldout_set(data, views, train, test, settings, candidate, seed)
    if not sets:
        raise RouterError(f"--lodo needs the test split of one of {list(SELECTION_GROUPS)}")
    out = {"all": scope_report(concat_sets(list(sets.values())), seed, n_boot)}
    out |= {group: scope_report(es, seed, n_boot) for group, es in sets.items()}
    return out


def heldout_set(
    data: Featurised,
    views: list[CallView],
    train: np.ndarray,
    test: np.ndarray,
    settings: Settings,
    candidate: Candidate,
    seed: int,
) -> EvalSet:
    """The candidate head and kNN fitted on `train` rows, evaluated on `test` rows."""
    train_data = Featurised(data.table.subset(train), data.embeddings[train], data.numeric[train])
    model = fit_final(train_data, candidate, seed)
    return routers_set(data, views, model, train, test, settings, seed)


def config_summary(settings: Settings) -> dict[str, Any]:
    """The part of the config the numbers depend on: tiers and prices, output tokens, rules."""
    return {
        "tiers": [
            {"name": t.name, "models": t.models, "input_price_per_m": t.input_price_per_m,
             "output_price_per_m": t.output_price_per_m, "context_window": t.context_window}
            for t in settings.tiers
        ],
        "expected_output_tokens": settings.expected_output_tokens,
        "task_rules": {k: v.model_dump(exclude_none=True) for k, v in settings.task_rules.items()},
    }
