"""How long GET /spend's off-policy estimate takes on a large store: the estimate's own work
(`traces.estimate.spend_estimate`: one bounded query on the reports' connection, the map
deciding each row again, the bootstrap), timed in process on a SQLite store.

The store is **synthetic**: ``--decisions`` decisions (a million by default) with a labelled
outcome each, random keys, roles, tasks (``--tasks``), tiers, propensities and labels, the
newest ``--embedded`` of them with a stored embedding (384 float16 values, as
``feature_storage: embedding`` keeps). Only the sizes matter here; the map is fitted from
random per-category sums. Times, best of ``--repeats``, for each row cap and window:

    .venv/bin/python bench/spend_estimate_bench.py --decisions 1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from router.config import StoreConfig, load_settings
from router.decision.categories import Clusters
from router.decision.learned_map import COLUMNS
from router.decision.map_fit import fit_map
from router.traces.estimate import EstimateLimits, spend_estimate
from router.traces.rows import encode_embedding
from router.traces.store import TraceStore

CHUNK = 50_000
DIM = 384


def fill(store: TraceStore, tiers: tuple[str, ...], n: int, tasks: int, embedded: int,
         now: float, seed: int) -> None:
    """`n` decisions one second apart up to `now`, each with a labelled outcome."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        tier = rng.integers(0, len(tiers), size)
        propensity = np.where(rng.random(size) < 0.1, rng.uniform(0.05, 0.9, size), 1.0)
        labels = (rng.random(size) < 0.6 + 0.1 * tier).astype(float)
        decisions, outcomes = [], []
        for i in range(size):
            k = start + i
            at = now - (n - k)
            priors = json.dumps(dict(zip(tiers, rng.uniform(0.4, 0.95, len(tiers)).round(4)
                                         .tolist(), strict=True)))
            vector = (encode_embedding(rng.standard_normal(DIM).astype(np.float32))
                      if k >= n - embedded else None)
            decisions.append((
                f"d{k}", at, tiers[tier[i]], "m", "classifier", "{}", '{"n_tools": 0}', 0.001,
                300, "bench", float(propensity[i]), f"key{k % 3}", f"role{k % 4}",
                f"task{rng.integers(tasks)}", priors, vector))
            outcomes.append((f"f{k}", f"d{k}", at + 0.5, "x", tiers[tier[i]], labels[i],
                             0.001 * (1 + tier[i]), 0, 0))
        store.execute([
            ("INSERT INTO decisions (decision_id, created_at, tier, model, reason, scores, "
             "features, estimated_cost_usd, tokens_in, router_version, propensity, api_key, "
             "role, task, prior_scores, embedding) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", decisions),
            ("INSERT INTO outcomes (feedback_id, decision_id, received_at, body_sha256, tier, "
             "quality, cost_usd, cost_estimated, fallback_used) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", outcomes)])


def synthetic_map(tiers: tuple[str, ...], tasks: int, config, seed: int):  # noqa: ANN001, ANN201
    """A map over every (key, role, task) path, fitted from random sums."""
    rng = np.random.default_rng(seed)
    evidence = {}
    for key in range(3):
        paths = ["", *(f"role:role{r}" for r in range(4)),
                 *(f"role:role{r}/task:task{t}" for r in range(4) for t in range(tasks))]
        for path in paths:
            n = rng.integers(40, 400, len(tiers)).astype(float)
            rate = rng.uniform(0.5, 0.95, len(tiers))
            values = np.zeros((len(tiers), len(COLUMNS)))
            values[:, 0], values[:, 1], values[:, 2] = n, n * rate, n
            values[:, 3], values[:, 4], values[:, 5] = n, n * rate, n * 0.7
            values[:, 6], values[:, 7], values[:, 8] = n.sum() * 0.7, n.sum(), n
            evidence[(f"key{key}", path)] = values
    return fit_map(evidence, tiers, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--embedded", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store", type=Path, default=None, help="SQLite file (default: temp)")
    args = parser.parse_args()
    settings = load_settings(None)
    tiers = tuple(settings.tier_names)
    config = settings.learning.model_copy(update={"cluster_bits": 4})
    settings = settings.model_copy(update={"learning": config})
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "traces.db"
        store = TraceStore(StoreConfig(url=f"sqlite:///{path}")).start()
        try:
            now = time.time()
            started = time.perf_counter()
            if store.counts()["outcomes"] == 0:
                fill(store, tiers, args.decisions, args.tasks, args.embedded, now, seed=0)
            counts = store.counts()
            print(f"synthetic store: {counts['decisions']:,} decisions, {counts['outcomes']:,} "
                  f"labelled outcomes, the newest {args.embedded:,} with embeddings; filled in "
                  f"{time.perf_counter() - started:.0f} s")
            learned = synthetic_map(tiers, args.tasks, config, seed=0)
            clusters = Clusters(config.cluster_bits, DIM)
            print(f"map: {len(learned.entries):,} categories")
            for rows, resamples, since in ((10_000, 200, None), (100_000, 200, None),
                                           (10_000, 2000, None), (10_000, 200, now - 3600)):
                limits = EstimateLimits(max_rows=rows, resamples=resamples)
                best, last = float("inf"), None
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    last = spend_estimate(store, settings, learned, clusters, since, limits)
                    best = min(best, time.perf_counter() - t0)
                assert last is not None
                window = "all time" if since is None else "the last hour"
                print(f"estimate over {window}, at most {rows:,} rows, {resamples} resamples: "
                      f"{best:.2f} s (best of {args.repeats}); {last.overall.calls:,} calls "
                      f"used, skipped {last.skipped}")
        finally:
            store.close()


if __name__ == "__main__":
    main()
