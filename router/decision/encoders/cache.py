"""An LRU cache in front of any backend: agents resend the same step text again and again."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from router.decision.encoders.base import Embedder


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
