"""The embeddings step of a run: the training encoder, its vectors cached on disk, a table's
features.

The encoder is the service's own (`router.decision.encoders`) without its LRU; the disk cache is
keyed by content (one file per embedder name, which names the backend and int8 recipe; inside it
the sha1 of each text), so a rerun, or `evaluate` after `train` on the same backend, embeds
nothing it has seen. It is saved every minute while embedding, so an interrupted run keeps
its work. `featurise` gives every row of a
prompt table the view the service would compute, its embedding and its cheap numbers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router.config import Settings
from router.decision.encoders.backends import make_embedder
from router.decision.encoders.base import Embedder
from router.decision.features import CallView, numbers_of
from training.labels import PromptTable, views_of
from training.progress import Progress

log = logging.getLogger(__name__)

CHUNK = 256
CHECKPOINT_S = 60.0  # an interrupted run keeps what it embedded up to the last minute


KEY_BYTES = 20  # a sha1 digest


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingCache:
    """One file pair per embedder (keys, vectors); appended to, never edited in place."""

    def __init__(self, directory: Path, embedder: Embedder):
        self.embedder = embedder
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder.name)
        self.path = Path(directory) / f"{slug}.npz"
        self._index: dict[bytes, int] = {}
        self._vectors = np.empty((0, embedder.dimension), dtype=np.float32)
        if self.path.exists():
            with np.load(self.path) as data:
                keys, self._vectors = data["keys"], data["vectors"]
            # numpy's fixed-width bytes drop trailing NULs: a digest ending in 0x00 comes back
            # short, and unpadded it would never match again (re-embedded on every run)
            self._index = {bytes(k).ljust(KEY_BYTES, b"\0"): i for i, k in enumerate(keys)}

    def embed(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        """Vectors for `texts`, encoding only those not seen before, then saving the cache."""
        keys = [text_key(t) for t in texts]
        todo: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._index and key not in todo:
                todo[key] = text
        if todo:
            self._add(todo, progress)
        return self._vectors[[self._index[k] for k in keys]]

    def _add(self, todo: dict[bytes, str], progress: bool) -> None:
        items = list(todo.items())
        log.info("embedding %d texts not in the cache %s (%d there)", len(items), self.path,
                 len(self._index))
        pending: list[tuple[bytes, np.ndarray]] = []
        last_save = time.monotonic()
        with Progress(len(items) if progress else 0, f"embedding ({self.embedder.name})",
                      unit="text") as bar:
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                vectors = self.embedder.encode([t for _, t in chunk])
                pending.extend(zip([k for k, _ in chunk], vectors, strict=True))
                bar.update(len(chunk))
                if time.monotonic() - last_save >= CHECKPOINT_S:
                    self._append(pending)
                    pending, last_save = [], time.monotonic()
        self._append(pending)

    def _append(self, pairs: list[tuple[bytes, np.ndarray]]) -> None:
        if not pairs:
            return
        base = len(self._vectors)
        self._vectors = np.vstack([self._vectors, np.stack([v for _, v in pairs])]).astype(
            np.float32)
        for offset, (key, _) in enumerate(pairs):
            self._index[key] = base + offset
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._index), dtype=f"S{KEY_BYTES}")
        order = np.array(list(self._index.values()))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=self._vectors[order])
        os.replace(tmp, self.path)
        self._vectors = self._vectors[order]
        self._index = {k: i for i, k in enumerate(self._index)}


def training_embedder(settings: Settings, backend: str) -> Embedder:
    """The given backend, without the serving LRU (the disk cache does that job here)."""
    return make_embedder(
        settings.embedder.model_copy(update={"cache_size": 0, "backend": backend})
    )


# torch and onnx are the same fp32 encoder (vectors within 2e-7 of each other, measured on
# mbpp prompts), ONNX Runtime ~2.4x faster on CPU; int8 is faster still but moves ~2% of
# decisions (bench/backend_agreement.py), so it is never swapped in for fp32.
FP32_EQUIVALENT = {"torch": "onnx"}
DEFAULT_TRAINING_BACKEND = "onnx"


def model_backend(metadata: dict[str, Any]) -> str:
    """The encoder backend a model was trained with ("...@onnx-int8" -> "onnx-int8")."""
    name = str(metadata.get("embedder_backend", ""))
    backend = name.rsplit("@", 1)[1] if "@" in name else "torch"
    return backend.split(":", 1)[0]


def embedding_backend(metadata: dict[str, Any]) -> str:
    """The backend to embed with for a model: its own, or the fastest one with the same numbers."""
    backend = model_backend(metadata)
    return FP32_EQUIVALENT.get(backend, backend)


@dataclass
class Featurised:
    """A prompt table with its embeddings and cheap features, rows aligned."""

    table: PromptTable
    embeddings: np.ndarray
    numeric: np.ndarray


def featurise(table: PromptTable, cache: EmbeddingCache) -> tuple[Featurised, list[CallView]]:
    """Views, embeddings and cheap features of every row (the views are what the service sees)."""
    views = views_of(table.prompts)
    embeddings = cache.embed([v.text for v in views])
    numeric = numbers_of(views)
    return Featurised(table, embeddings, numeric), views


def warn_duplicates(data: Featurised) -> None:
    """Few-shot prompts whose views collapse to one embedding make in-domain metrics lie."""
    sources = data.table.prompts["source"].to_numpy()
    for source in np.unique(sources):
        rows = data.embeddings[sources == source]
        distinct = len(np.unique(rows.round(4), axis=0))
        if distinct < 0.9 * len(rows):
            log.warning("%s: %d prompts but only %d distinct embeddings", source, len(rows),
                        distinct)
