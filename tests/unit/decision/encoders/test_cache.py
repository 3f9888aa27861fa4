"""The LRU cache in front of the encoder: same vectors, fewer encoder calls, bounded size."""

from __future__ import annotations

import numpy as np

from router.decision.encoders.cache import CachedEmbedder
from tests.conftest import FakeEmbedder


def test_cache_returns_same_vectors_and_counts_hits() -> None:
    inner = FakeEmbedder()
    cached = CachedEmbedder(inner, max_entries=10)
    first = cached.encode(["a b", "c d", "a b"])
    np.testing.assert_array_equal(first, inner.encode(["a b", "c d", "a b"]))
    again = cached.encode(["c d"])
    np.testing.assert_array_equal(again[0], first[1])
    assert cached.hits == 2 and cached.misses == 2  # duplicate inside a batch is encoded once


def test_cache_is_bounded_lru() -> None:
    cached = CachedEmbedder(FakeEmbedder(), max_entries=2)
    cached.encode(["a"]), cached.encode(["b"]), cached.encode(["a"]), cached.encode(["c"])
    assert len(cached._cache) == 2
    cached.encode(["a"])  # still cached: it was used after b
    assert cached.hits == 2
