"""The embeddings step of a run: the training encoder, its vectors cached on disk, a table's
features.

The encoder is the service's own (`router.decision.encoders`) without its LRU; the disk cache is
keyed by embedder and text hash, so a second run is fast. `featurise` gives every row of a
prompt table the view the service would compute, its embedding and its cheap numbers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from router.config import Settings
from router.decision.encoders.backends import make_embedder
from router.decision.encoders.base import Embedder
from router.decision.features import CallView, numbers_of
from training.labels import PromptTable, views_of

log = logging.getLogger(__name__)

CHUNK = 256


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
            self._index = {bytes(k): i for i, k in enumerate(keys)}

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
        parts = []
        bar = tqdm(total=len(items), desc=f"embedding ({self.embedder.name})",
                   unit="text", disable=not progress)
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            parts.append(self.embedder.encode([t for _, t in chunk]))
            bar.update(len(chunk))
        bar.close()
        base = len(self._vectors)
        self._vectors = np.vstack([self._vectors, *parts]).astype(np.float32)
        for offset, (key, _) in enumerate(items):
            self._index[key] = base + offset
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._index), dtype="S20")
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


def model_backend(metadata: dict[str, Any]) -> str:
    """The encoder backend a model was trained with ("...@onnx-int8" -> "onnx-int8")."""
    name = str(metadata.get("embedder_backend", ""))
    return name.rsplit("@", 1)[1] if "@" in name else "torch"


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
