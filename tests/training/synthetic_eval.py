"""Synthetic prompts, labels, traces, a fake embedder and a tiny model for the evaluation tests.

Everything here is made up in the test: no public data, no real encoder. Labels follow one
latent difficulty d ~ U(0, 1): small answers well when d < 0.9, medium when d < 0.95, large
always, so a perfect scorer exists (the labels themselves). `synthetic_outcomes` makes
many-model outcomes for the ceiling analysis the same way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.config import load_settings
from router.decision.artifact import save_model
from router.decision.encoders.base import DIMENSION
from router.decision.features import CallView, FeatureSpec, view_of_prompt
from router.decision.quality_head import TierQualityRouter
from training.labels import PromptTable

TIERS = ["small", "medium", "large"]
TIER_MODELS = {
    "small": "mistralai/mistral-7b-chat",
    "medium": "gpt-3.5-turbo-1106",
    "large": "gpt-4-1106-preview",
}


def synthetic_labels(n: int, seed: int = 0) -> np.ndarray:
    difficulty = np.random.default_rng(seed).uniform(size=n)
    return np.column_stack([difficulty < 0.9, difficulty < 0.95, np.ones(n, bool)]).astype(float)


def synthetic_prompts(n: int, seed: int = 0) -> list[str]:
    lengths = np.random.default_rng(seed + 1).integers(3, 400, size=n)
    return [f"Question {i}: " + " ".join(["word"] * int(k)) + "?" for i, k in enumerate(lengths)]


def synthetic_table(
    n: int, seed: int = 0, task: str | None = None
) -> tuple[PromptTable, list[CallView]]:
    """A test-split PromptTable over two sources, with the views the service would compute."""
    prompts = synthetic_prompts(n, seed)
    frame = pd.DataFrame({
        "prompt_id": [f"p{i}" for i in range(n)],
        "prompt": prompts,
        "messages": [None] * n,
        "source": ["synth/a" if i % 2 else "synth/b" for i in range(n)],
        "dataset": "synth",
        "split": "test",
        "task": [task] * n,
    })
    table = PromptTable(frame, synthetic_labels(n, seed), np.ones(n), list(TIERS))
    return table, [view_of_prompt(p) for p in prompts]


class FakeEmbedder:
    """Unit vectors seeded by the text's hash: deterministic, instant, no model."""

    name = "fake-hash-embedder@test"
    dimension = DIMENSION

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=self.dimension)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)


def write_traces(path: Path, n: int, seed: int = 0) -> Path:
    """One JSONL trace per (prompt, tier), in the TRACES.md format."""
    labels = synthetic_labels(n, seed)
    with path.open("w") as fh:
        for i, prompt in enumerate(synthetic_prompts(n, seed)):
            for t, tier in enumerate(TIERS):
                record = {"prompt": prompt, "model": TIER_MODELS[tier],
                          "quality": float(labels[i, t]),
                          "source": "synth/a" if i % 2 else "synth/b"}
                fh.write(json.dumps(record) + "\n")
    return path


def save_tiny_model(model_dir: Path, seed: int = 0) -> Path:
    """The shipped kind of head on random embeddings, saved as a real model directory."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, DIMENSION)).astype(np.float32)
    y = (rng.uniform(size=(120, 3)) < [0.6, 0.8, 0.95]).astype(float)
    recipe = {"C": 0.05, "anchor_levels": True, "n_clusters": 8, "ood_low": None,
              "ood_high": None}
    head = TierQualityRouter(tiers=TIERS, **recipe).fit(x, y)
    return save_model(
        model_dir, head, FeatureSpec(), router_version="tiny-test-model",
        head={"name": "tqr", "head": "tqr", **recipe},
        embedder_backend=FakeEmbedder.name, seed=seed,
    )


def evaluate_kwargs(
    model_dir: Path, traces: Path, out: Path, cache_dir: Path, seed: int = 0, n_boot: int = 20
) -> dict[str, Any]:
    """The arguments `tier-router evaluate` would pass, for traces only, with the fake encoder."""
    return {
        "settings": load_settings(None), "model_dir": model_dir, "data_dir": None,
        "traces": [traces], "out": out, "seed": seed, "strict": True, "cache_dir": cache_dir,
        "backend": None, "bootstrap": n_boot, "lodo": False, "embedder": FakeEmbedder(),
    }


def synthetic_outcomes(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """One latent difficulty per prompt drives every model, so other models' outcomes inform."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    ability = {"weak": -0.5, "strong": 3.0, "other-a": 0.0, "other-b": 0.5, "other-c": -1.0}
    rows = []
    for i in range(n):
        for model, a in ability.items():
            p = 1.0 / (1.0 + np.exp(-(3.0 * (a - difficulty[i]))))
            rows.append({"prompt_id": f"p{i}", "model": model, "quality": float(rng.random() < p),
                         "source": "easy" if i % 3 else "hard",
                         "split": "train" if i % 4 else "test"})
    return pd.DataFrame(rows)
