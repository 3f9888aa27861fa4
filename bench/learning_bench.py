"""What the online learning state adds to a /route decision, beside the encoder it follows.

Fills a `LearningState` to its capacity with embeddings of real prompts from the shared data
(labels drawn at random: only the timing matters here), then times, at batch 1 and 32, the
encoder (the configured backend) and `LearningState.adapt` (the transform the service applies),
and prints the ratio. The state is full, the worst case: an empty state returns at once.

    .venv/bin/python bench/learning_bench.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from router.config import load_settings
from router.decision.encoders.backends import make_embedder
from router.traces.learning import LearningState, Observation
from training.ingest import load_outcomes


def best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.min(times))  # the least disturbed run: the machine may be shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    settings = load_settings(args.config)
    embedder = make_embedder(settings.embedder.model_copy(update={"cache_size": 0}))
    outcomes, _ = load_outcomes(args.data_dir, [], sources=["llmrouter"])
    texts = outcomes["prompt"].drop_duplicates().astype(str).tolist()
    capacity = settings.learning.capacity
    vectors = embedder.encode(texts[:capacity])
    rng = np.random.default_rng(0)
    state = LearningState(settings.learning, settings.tier_names, embedder.dimension)
    for i, v in enumerate(vectors):
        state.observe(Observation(f"f{i}", settings.tier_names[i % 3], float(rng.random() < .7),
                                  1.0, float(rng.uniform(0.3, 0.9)), v))
    state.recalibrate()
    print(f"state: {state.size} outcomes of {capacity}; encoder {embedder.name}")
    print(f"{'batch':>5} {'encoder ms':>11} {'adapt ms':>9} {'adapt/encoder':>14}")
    for batch in (1, 32):
        sample = texts[capacity:capacity + batch]
        emb = embedder.encode(sample)
        scores = rng.uniform(0.2, 0.9, (batch, 3))
        encode = best_of(lambda s=sample: embedder.encode(s), args.repeats)  # type: ignore[misc]
        adapt = best_of(lambda e=emb, s=scores: state.adapt(e, [], s), args.repeats)  # type: ignore[misc]
        print(f"{batch:>5} {encode * 1e3:>11.2f} {adapt * 1e3:>9.3f} {adapt / encode:>14.1%}")


if __name__ == "__main__":
    main()
