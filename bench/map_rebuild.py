"""How long the learned map takes to rebuild from a store of a million outcomes, and what it
adds to a /route decision.

Writes a SQLite store in a temporary directory (or ``--store``) holding ``--outcomes``
decisions with their labelled outcomes (synthetic: random keys, roles, tasks, tiers and labels;
only the sizes matter here), and the evidence sums those outcomes give, through the same
`traces.evidence.increments` and upsert the feedback path uses (summed per category first, so
filling the store does not take an hour). Then times, best of ``--repeats``:

* the rebuild each replica runs (`serving.learner.Learner.rebuild`: read the evidence sums,
  `fit_map`; the swap is one reference assignment);
* for comparison, reading every learned outcome back (what a rebuild from outcomes would need);
* one call's verdict (`LearnedMap.assess`), the per-call work on /route's path.

    .venv/bin/python bench/map_rebuild.py --outcomes 1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from router.config import LearningConfig, StoreConfig, load_settings
from router.decision.categories import Signals
from router.decision.learned_map import COLUMNS
from router.decision.map_fit import fit_map
from router.traces.evidence import EvidenceStore, increments
from router.traces.store import TraceStore

CHUNK = 50_000


def best_of(fn: Callable[[], object], repeats: int) -> float:
    return timed(fn, repeats)[0]


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the least disturbed run: the machine may be shared."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def fill(store: TraceStore, evidence: EvidenceStore, tiers: tuple[str, ...], n: int, tasks: int,
         seed: int) -> None:
    """`n` decisions and outcomes in the store's tables, and their evidence sums."""
    rng = np.random.default_rng(seed)
    config = evidence.config
    sums: dict[tuple[str, str, str], np.ndarray] = {}
    now = time.time()
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        keys = rng.integers(0, 3, size)
        roles = rng.integers(0, 4, size)
        task_ids = rng.integers(0, tasks, size)
        served = rng.integers(0, len(tiers), size)
        labels = (rng.random(size) < 0.6 + 0.1 * served).astype(float)
        priors = rng.uniform(0.4, 0.95, (size, len(tiers)))
        decisions, outcomes = [], []
        for i in range(size):
            did = f"d{start + i}"
            decision = {"api_key": f"key{keys[i]}", "role": f"role{roles[i]}",
                        "task": f"task{task_ids[i]}", "propensity": 1.0, "reason": "classifier",
                        "prior_scores": json.dumps(dict(zip(tiers, priors[i].round(4).tolist(),
                                                            strict=True)))}
            outcome = {"tier": tiers[served[i]], "quality": labels[i]}
            for namespace, path, tier, values in increments(outcome, decision, tiers, config,
                                                            None):
                key = (namespace, path, tier)
                row = sums.get(key)
                sums[key] = np.asarray(values) if row is None else row + values
            decisions.append((did, now, tiers[served[i]], "m", "classifier", "{}", "{}", 0.0,
                              10, "bench", 1.0, decision["api_key"], decision["role"],
                              decision["task"], decision["prior_scores"]))
            outcomes.append((f"f{start + i}", did, now, "x", tiers[served[i]], labels[i], 1, 0))
        store.execute([
            ("INSERT INTO decisions (decision_id, created_at, tier, model, reason, scores, "
             "features, estimated_cost_usd, tokens_in, router_version, propensity, api_key, "
             "role, task, prior_scores) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             decisions),
            ("INSERT INTO outcomes (feedback_id, decision_id, received_at, body_sha256, tier, "
             "quality, cost_estimated, fallback_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             outcomes)])
    evidence.add_at(((ns, path, tier, tuple(values.tolist())), now)
                            for (ns, path, tier), values in sums.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outcomes", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", type=Path, default=None, help="SQLite file (default: temp)")
    args = parser.parse_args()
    settings = load_settings(None)
    config = LearningConfig(**{**settings.learning.model_dump(), "cluster_bits": 0})
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "traces.db"
        store = TraceStore(StoreConfig(url=f"sqlite:///{path}")).start()
        try:
            tiers = tuple(settings.tier_names)
            evidence = EvidenceStore(store, config)
            started = time.perf_counter()
            if store.counts()["outcomes"] == 0:
                fill(store, evidence, tiers, args.outcomes, args.tasks, seed=0)
            filled = time.perf_counter() - started
            counts = store.counts()
            rows = len(store.query("SELECT 1 AS one FROM learning_evidence"))
            print(f"store: {counts['outcomes']:,} outcomes, {rows:,} evidence rows "
                  f"({len(COLUMNS)} sums each); filled in {filled:.1f} s")
            rebuild, cpu = timed(lambda: fit_map(evidence.read(tiers), tiers, config),
                                 args.repeats)
            learned = fit_map(evidence.read(tiers), tiers, config)
            print(f"rebuild (read sums + fit): {rebuild:.3f} s ({cpu:.3f} s CPU), best "
                  f"of {args.repeats}; {len(learned.entries):,} live categories, revision "
                  f"{learned.revision:,}")
            reread = best_of(lambda: store.learning_rows(10**9), 1)  # noqa: B023
            print(f"for comparison, reading every learned outcome back: {reread:.1f} s")
            call = Signals("key1", "role2", "task7")
            scores = (0.6, 0.7, 0.8)
            per_call = best_of(lambda: [learned.assess(call, None, scores, 1.0, 0.95, 0.1)
                                        for _ in range(1000)], args.repeats) / 1000
            print(f"one call's verdict (assess): {per_call * 1e6:.1f} us")
        finally:
            store.close()


if __name__ == "__main__":
    main()
