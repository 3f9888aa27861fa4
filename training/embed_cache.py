"""Embeddings cached on disk, keyed by embedder and text hash, so a second training run is fast."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from router.decision.encoders.base import Embedder

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
