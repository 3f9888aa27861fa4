"""The learned map's evidence, kept with the outcomes: sums per (key, category, tier).

Every labelled outcome of a routed decision adds, for each category the call fell in (its
signal path, its embedding cluster, its key's root; router/decision/categories.py), one row of
increments per tier (the columns of `router.decision.learned_map.COLUMNS`). The sums live in
the store's ``learning_evidence`` table, updated by an atomic add (``ON CONFLICT DO UPDATE``), so
replicas on one store add into the same rows and a rebuild reads a few rows per category, never
the outcomes themselves: its cost follows the number of categories, not of outcomes.

**Forgetting.** Evidence loses half its weight every ``half_life_days``. So that an update is a
plain addition, each increment is stored multiplied by ``2^((t - epoch) / half_life)`` (w^2 by
its square), with ``epoch`` fixed when the store first learns; reading multiplies back by
``2^(-(now - epoch) / half_life)``. A row's values so stay exact sums of decayed outcomes.
(The scale of a w^2 sum reaches float64's range after about 500 half-lives: 40 years at the
default 30 days, 9.5 at the shortest allowed, 7.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from router.config import LearningConfig
from router.decision.categories import ROOT as ROOT_PATH
from router.decision.categories import Clusters, Signals, key_name, lookup_paths, signal_path
from router.decision.learned_map import (
    COLUMNS,
    SN,
    TOTAL,
    W2,
    WY,
    CategoryKey,
    N,
    P,
    S,
    W,
    Y,
    category_name,
)
from router.errors import StoreError
from router.traces.rows import decode_embedding
from router.traces.store import TraceStore

EPOCH_KEY = "learning_epoch"  # the store_meta key of the decay's reference instant
BACKFILL_KEY = "learning_backfill"  # the store_meta key claimed by the one replica that sums
CATEGORY_RESET_PREFIX = "learning_reset:"  # + the category's name: when it was last forgotten
DAY_S = 86400.0
EPS = 1e-4

_UPSERT = (
    f"INSERT INTO learning_evidence (api_key, category, tier, {', '.join(COLUMNS)}) "
    f"VALUES (?, ?, ?, {', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (api_key, category, tier) DO UPDATE SET "
    + ", ".join(f"{c} = learning_evidence.{c} + excluded.{c}" for c in COLUMNS)
)
_CALLS = ("SELECT api_key, role, task, step, tier, COUNT(*) AS calls, "
          "SUM(CASE WHEN reason = 'explore' THEN 1 ELSE 0 END) AS explored FROM decisions "
          "WHERE created_at >= ? GROUP BY api_key, role, task, step, tier")
_READ = f"SELECT api_key, category, tier, {', '.join(COLUMNS)} FROM learning_evidence"

Increment = tuple[str, str, str, tuple[float, ...]]  # (namespace, category, tier, columns)


def _row_signals(row: Mapping[str, Any], clusters: Clusters | None
                 ) -> tuple[Signals, str | None]:
    """A stored decision row's signals and its embedding cluster's path (None: no cluster)."""
    signals = Signals(row.get("api_key"), row.get("role"), row.get("task"), row.get("step"))
    embedding = decode_embedding(row.get("embedding"))
    if clusters is None or embedding is None:
        return signals, None
    return signals, clusters.path(int(clusters.of(embedding[None, :])[0]))


def categories_of(row: Mapping[str, Any], config: LearningConfig,
                  clusters: Clusters | None) -> list[str]:
    """The categories a stored decision row falls in (signal path, cluster, root)."""
    signals, cluster = _row_signals(row, clusters)
    paths = signal_path(signals, config.category_fields)
    return [*paths, *([cluster] if cluster is not None else []), ROOT_PATH]


def category_names(row: Mapping[str, Any], config: LearningConfig,
                   clusters: Clusters | None) -> list[str]:
    """The names of a stored decision row's categories in its key's namespace, finest first,
    as the map looks them up and names them (``key/role:r/task:t``, ...)."""
    signals, cluster = _row_signals(row, clusters)
    namespace = key_name(row.get("api_key"))
    return [category_name(namespace, path)
            for path in lookup_paths(signals, config.category_fields, cluster)]


def increments(outcome: Mapping[str, Any], decision: Mapping[str, Any], tiers: Sequence[str],
               config: LearningConfig, clusters: Clusters | None) -> list[Increment]:
    """What one outcome adds (nothing when it cannot teach: no label, not a routed decision,
    a tier this config does not have)."""
    tier, label = outcome.get("tier"), outcome.get("quality")
    if label is None or tier not in tiers or decision.get("reason") == "degraded":
        return []
    raw = decision.get("prior_scores")
    priors = json.loads(raw) if isinstance(raw, str) and raw else {}
    w = min(1.0 / max(float(decision.get("propensity") or 1.0), EPS), config.max_weight)
    y = float(label)
    rows = []
    namespace = key_name(decision.get("api_key"))
    for path in categories_of(decision, config, clusters):
        for name in tiers:
            values = [0.0] * len(COLUMNS)
            score = priors.get(name)
            if score is not None:
                values[S], values[SN] = float(score), 1.0
            if name == tier:
                values[W], values[WY], values[W2] = w, w * y, w * w
                values[N], values[Y], values[TOTAL] = 1.0, y, 1.0
                values[P] = float(score) if score is not None else y
            if any(values):
                rows.append((namespace, path, name, tuple(values)))
    return rows


class EvidenceStore:
    """The evidence table of one trace store, read and added to with the decay's scale."""

    def __init__(self, store: TraceStore, config: LearningConfig):
        self.store = store
        self.config = config
        self._epoch: float | None = None

    @property
    def half_life_s(self) -> float:
        return self.config.half_life_days * DAY_S

    def epoch(self, now: float) -> float:
        """The decay's reference instant: set once, by the first replica to learn."""
        if self._epoch is None:
            self.store.execute([("INSERT INTO store_meta (key, value) VALUES (?, ?) "
                                 "ON CONFLICT (key) DO NOTHING", [(EPOCH_KEY, repr(now))])])
            rows = self.store.query("SELECT value FROM store_meta WHERE key = ?", (EPOCH_KEY,))
            self._epoch = float(rows[0]["value"])
        return self._epoch

    def add(self, rows: Iterable[Increment], at: float | None = None) -> int:
        """Add increments observed at `at` (now); returns how many rows it touched."""
        at = time.time() if at is None else at
        return self.add_at((row, at) for row in rows)

    def add_at(self, items: Iterable[tuple[Increment, float]]) -> int:
        """Add (increment, the instant it was observed) pairs, in one transaction."""
        params = list(self._scaled(items))
        self.store.execute([(_UPSERT, params)])
        return len(params)

    def _scaled(self, items: Iterable[tuple[Increment, float]]) -> Iterator[tuple[Any, ...]]:
        """Upsert parameters, each increment scaled by its instant (lazily: a backfill's
        millions of rows are never all in memory)."""
        epoch: float | None = None
        for (namespace, path, tier, values), at in items:
            epoch = self.epoch(at) if epoch is None else epoch  # fixed once set
            scale = 2.0 ** ((at - epoch) / self.half_life_s)
            scaled = [v * scale for v in values]
            scaled[W2] = values[W2] * scale * scale
            scaled[TOTAL] = values[TOTAL]
            yield (namespace, path, tier, *scaled)

    def read(self, tiers: Sequence[str], now: float | None = None
             ) -> dict[CategoryKey, np.ndarray]:
        """Every category's sums decayed to `now`, as (T, len(COLUMNS)) in `tiers` order."""
        return self.read_marked(tiers, now, ("",))[0]

    def read_marked(self, tiers: Sequence[str], now: float | None, marks: Sequence[str]
                    ) -> list[dict[CategoryKey, np.ndarray]]:
        """`read` for each mark in one pass over the table: the rows whose tier is
        ``<mark><tier>`` (``""``: the map's own, ``check:``: the check evidence's)."""
        now = time.time() if now is None else now
        outs: list[dict[CategoryKey, np.ndarray]] = [{} for _ in marks]
        rows = self.store.query(_READ)
        if not rows:
            return outs
        decay = 2.0 ** (-(now - self.epoch(now)) / self.half_life_s)
        factors = np.full(len(COLUMNS), decay)
        factors[W2], factors[TOTAL] = decay * decay, 1.0
        index = {mark + t: (m, i) for m, mark in enumerate(marks) for i, t in enumerate(tiers)}
        for row in rows:
            where = index.get(row["tier"])
            if where is None:
                continue
            out, t = outs[where[0]], where[1]
            key = (row["api_key"], row["category"])
            values = out.get(key)
            if values is None:
                values = out[key] = np.zeros((len(tiers), len(COLUMNS)))
            values[t] = [float(row[c]) for c in COLUMNS]
        for out in outs:
            for values in out.values():
                values *= factors
        return outs

    def forget(self, namespace: str, path: str, at: float | None = None) -> int:
        """Forget one category of one key and every finer one under it (its coarser
        categories keep what its outcomes taught them), and record when in the store's
        metadata; returns how many (category, tier) rows went, 0 for an unknown category."""
        at = time.time() if at is None else at
        rows = self.store.query("SELECT DISTINCT category FROM learning_evidence "
                                "WHERE api_key = ?", (namespace,))
        gone = [r["category"] for r in rows if path == ROOT_PATH or r["category"] == path
                or str(r["category"]).startswith(path + "/")]
        if not gone:
            return 0
        name = f"{namespace or '-'}/{path}" if path else (namespace or "-")
        self.store.execute([
            ("DELETE FROM learning_evidence WHERE api_key = ? AND category = ?",
             [(namespace, category) for category in gone]),
            ("INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
             "DO UPDATE SET value = excluded.value",
             [(CATEGORY_RESET_PREFIX + name, repr(at))])])
        return len(gone)

    def clear(self) -> None:
        """Forget every category's sums (a learning reset)."""
        self.store.execute([("DELETE FROM learning_evidence", [()])])

    def is_empty(self) -> bool:
        return not self.store.query("SELECT 1 AS one FROM learning_evidence LIMIT 1")

    def backfill(self, tiers: Sequence[str], clusters: Clusters | None,
                 since: float = 0.0) -> int:
        """Sum the learned outcomes received after `since` into the table (a store written
        before it had one), once per store: the sums and a claim in the store's metadata go in
        one transaction, so of replicas starting together on one old store exactly one sums
        (the others' claim conflicts and they add nothing). Returns how many outcomes were
        read (0 when another replica had claimed the backfill)."""
        rows = self.store.learning_rows(10**9, since)
        if not rows:
            return 0
        now = time.time()
        self.epoch(now)  # set before the transaction: the lazy rows only read it
        increments_at = ((inc, float(row["received_at"])) for row in rows
                         for inc in increments(row, row, tiers, self.config, clusters))
        try:
            self.store.execute([
                ("INSERT INTO store_meta (key, value) VALUES (?, ?)", [(BACKFILL_KEY, repr(now))]),
                (_UPSERT, self._scaled(increments_at))])
        except StoreError:
            if self.store.query("SELECT 1 AS one FROM store_meta WHERE key = ?",
                                (BACKFILL_KEY,)):
                return 0  # another replica summed them
            raise
        return len(rows)


def call_counts(store: TraceStore, since: float) -> list[dict[str, Any]]:
    """Decisions since `since` grouped by (api_key, role, task, step, tier): calls and the
    explored ones (router/decision/map_view.py rolls them up into categories)."""
    return store.query(_CALLS, (since,))
