"""From long-format outcomes (one row per prompt and model) to one row per prompt with tier labels.

"Any model of the tier answered" is nearly useless as a label. Two labels are offered:

- ``representative`` (default): the outcome of the tier's representative model, the first of
  the tier's ``training_models`` (config order) that was tried on the prompt. A tier is served
  by one model at a time, so this is what a deployment realises; it also keeps a class's
  weak outliers out (on RouterBench claude-v2 scores 0.55, below mistral-7b's 0.58).
- ``mean``: the mean quality of all the tier's training models tried on the prompt.

NaN where no model of the tier was tried (partial information).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from router.config import Settings
from router.decision.features import CallView, view_of
from router.schemas import ChatMessage

log = logging.getLogger(__name__)


@dataclass
class PromptTable:
    """Prompts with their tier labels; rows aligned across all fields."""

    prompts: pd.DataFrame  # prompt_id, prompt, messages, source, dataset, split, task
    labels: np.ndarray  # (n, T) tier mean quality, NaN where unobserved
    weights: np.ndarray  # (n,) inverse-propensity weight (1 for full information)
    tiers: list[str]

    def subset(self, mask: np.ndarray) -> PromptTable:
        return PromptTable(
            self.prompts[mask].reset_index(drop=True), self.labels[mask], self.weights[mask],
            self.tiers,
        )

    def __len__(self) -> int:
        return len(self.prompts)


LABELS = ("representative", "mean")


def tier_table(
    outcomes: pd.DataFrame, settings: Settings, label: str = "representative"
) -> PromptTable:
    """Aggregate outcomes by prompt and tier; models that map to no tier are left out."""
    if label not in LABELS:
        raise ValueError(f"The 'label' parameter must be one of {LABELS}. Got {label!r} instead.")
    tier_of = settings.tier_of_training_model()
    priority = {m: i for t in settings.tiers for i, m in enumerate(t.training_models)}
    frame = outcomes.assign(
        tier=outcomes["model"].map(tier_of), priority=outcomes["model"].map(priority)
    )
    unmapped = frame["tier"].isna()
    if unmapped.any():
        log.info("%d outcomes of %d models map to no tier and are not used: %s",
                 int(unmapped.sum()), frame.loc[unmapped, "model"].nunique(),
                 sorted(frame.loc[unmapped, "model"].unique())[:12])
    frame = frame[~unmapped]
    tiers = settings.tier_names
    labelled = frame
    if label == "representative":
        labelled = frame.sort_values("priority", kind="stable").drop_duplicates(
            ["prompt_id", "tier"], keep="first"
        )
    means = labelled.pivot_table(
        index="prompt_id", columns="tier", values="quality", aggfunc="mean"
    )
    means = means.reindex(columns=tiers)
    first = frame.drop_duplicates("prompt_id").set_index("prompt_id")
    prompts = first.loc[means.index, ["prompt", "messages", "source", "dataset", "split", "task"]]
    logged = frame.get("propensity")
    propensity = pd.to_numeric(logged, errors="coerce") if logged is not None else None
    inv = (1.0 / propensity).fillna(1.0) if propensity is not None else 1.0
    weights = frame.assign(w=inv).groupby("prompt_id")["w"].mean().reindex(means.index)
    return PromptTable(
        prompts=prompts.reset_index(),
        labels=means.to_numpy(dtype=np.float64),
        weights=weights.to_numpy(dtype=np.float64),
        tiers=tiers,
    )


def views_of(prompts: pd.DataFrame) -> list[CallView]:
    """The same view the service computes, for every training prompt."""
    views = []
    for prompt, messages in zip(prompts["prompt"], prompts["messages"], strict=True):
        if isinstance(messages, list) and messages:
            views.append(view_of([ChatMessage(**m) for m in messages]))
        else:
            views.append(view_of([ChatMessage(role="user", content=str(prompt))]))
    return views
