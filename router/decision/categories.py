"""Which categories a call falls in: its known signals, coarse to fine, and an embedding cluster.

A category is a path built from what the caller already says about a call: the API key's name
(the namespace every path lives in), then ``role``, then ``task``, then ``step`` (each only when
`learning.category_fields` names it: many agents send a step number in ``step``, which is no
category). ``role:planner/task:search`` is a child of ``role:planner``, which is a child of the
root ``""`` (the key's whole traffic). A call also falls in one embedding cluster,
``cluster:<id>@<cut>``, a child of the root: the nearest of the shipped model's own clusters of
its training data (fitted offline, stored in the artifact: the guard's centroids), or, for a
model without them, the sign pattern of its embedding on ``bits`` seeded random directions.
Either way every replica and restart cuts the space the same way, the number of clusters is
bounded, and ``<cut>`` names the cut so a new model's clusters never mix with an old one's
evidence. It is what a call with no signal, or whose signal categories are still sparse,
learns and is decided by.

`lookup_paths` lists a call's categories finest first, as the decision rule tries them:
the signal path from its finest level up, then the cluster, then the root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ROOT = ""
SHARED = "*"  # the key namespace of categories learned from every key's outcomes
CLUSTER_SEED = 20261204


@dataclass(frozen=True)
class Signals:
    """What the caller says about a call that can make a category."""

    key: str | None = None  # the API key's name
    role: str | None = None
    task: str | None = None
    step: str | None = None


def signal_path(signals: Signals, fields: Sequence[str]) -> list[str]:
    """The call's signal categories, coarsest first (without the root)."""
    path, parts = [], []
    for name in fields:
        value = getattr(signals, name)
        if value:
            parts.append(f"{name}:{value}")
            path.append("/".join(parts))
    return path


def lookup_paths(signals: Signals, fields: Sequence[str], cluster: str | None) -> list[str]:
    """Every category of the call, finest first: signal path, cluster (its path), root."""
    paths = signal_path(signals, fields)[::-1]
    if cluster is not None:
        paths.append(cluster)
    paths.append(ROOT)
    return paths


def cluster_path(cluster: int, cut: str = "") -> str:
    return f"cluster:{cluster}@{cut}" if cut else f"cluster:{cluster}"


def parent_of(path: str) -> str | None:
    """The coarser category a category borrows from (None for the root)."""
    if path == ROOT:
        return None
    if path.startswith("cluster:") or "/" not in path:
        return ROOT
    return path.rsplit("/", 1)[0]


def depth_of(path: str) -> int:
    return 0 if path == ROOT else path.count("/") + 1


def key_name(key: str | None) -> str:
    """The namespace of a key's categories ("" for calls without a key)."""
    return key or ""


class Clusters:
    """Which cluster an embedding falls in: the nearest of `centroids` (unit rows) when given,
    else the sign pattern on `bits` seeded random directions (2^bits clusters)."""

    def __init__(self, bits: int, dimension: int, centroids: np.ndarray | None = None,
                 cut: str = "", seed: int = CLUSTER_SEED):
        self.bits = bits
        self.dimension = dimension
        self.cut = cut if centroids is not None else f"hash{bits}"
        if centroids is not None:
            c = np.asarray(centroids, dtype=np.float32)
            self.planes_ = (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).T
        else:
            rng = np.random.default_rng(seed)
            self.planes_ = rng.standard_normal((dimension, bits)).astype(np.float32)
        self.nearest_ = centroids is not None
        self.powers_ = (1 << np.arange(bits)).astype(np.int64)

    def of(self, embeddings: np.ndarray) -> np.ndarray:
        """(n,) cluster ids; -1 for a row of the wrong dimension."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.planes_.shape[0]:
            return np.full(len(embeddings), -1, np.int64)
        products = embeddings @ self.planes_
        if self.nearest_:  # cosine: the embeddings' norms do not change the argmax
            return np.argmax(products, axis=1).astype(np.int64)
        return (products > 0).astype(np.int64) @ self.powers_

    def path(self, cluster: int) -> str | None:
        """The category path of a cluster id (None for -1)."""
        return cluster_path(cluster, self.cut) if cluster >= 0 else None
