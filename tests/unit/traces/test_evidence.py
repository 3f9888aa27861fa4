"""The learned map's evidence in the store: increments per category, atomic adds from several
replicas, forgetting, the sums an older store's outcomes give. Synthetic outcomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from router.config import LearningConfig
from router.decision.learned_map import TOTAL, W2, WY, N, W
from router.traces.evidence import DAY_S, EvidenceStore, increments
from router.traces.store import TraceStore
from tests.unit.traces.test_store import make_store, store_url  # noqa: F401 - fixture

TIERS = ("small", "medium", "large")
CONFIG = LearningConfig(cluster_bits=0, half_life_days=30)


@pytest.fixture
def store(store_url: str) -> Iterator[TraceStore]:  # noqa: F811 - the fixture above
    s = make_store(store_url).start()
    yield s
    s.close()


def decision(key: str | None = "team", role: str | None = "agent", task: str | None = "extract",
             propensity: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {"api_key": key, "role": role, "task": task, "step": "7", "propensity": propensity,
            "reason": "classifier",
            "prior_scores": json.dumps({"small": 0.5, "medium": 0.7, "large": 0.9}), **extra}


def outcome(tier: str = "medium", quality: float | None = 1.0) -> dict[str, Any]:
    return {"tier": tier, "quality": quality}


def test_one_outcome_adds_to_each_category_it_falls_in() -> None:
    rows = increments(outcome(), decision(propensity=0.25), TIERS, CONFIG, None)
    paths = sorted({(ns, path) for ns, path, _, _ in rows})
    assert paths == [("team", ""), ("team", "role:agent"), ("team", "role:agent/task:extract")]
    medium = next(v for ns, path, t, v in rows if path == "" and t == "medium")
    assert (medium[W], medium[WY], medium[W2], medium[N], medium[TOTAL]) == (4, 4, 16, 1, 1)
    small = next(v for ns, path, t, v in rows if path == "" and t == "small")
    assert small[W] == 0 and small[N] == 0  # only the model's score of small counts there
    assert increments(outcome(quality=None), decision(), TIERS, CONFIG, None) == []
    assert increments(outcome(), decision(reason="degraded"), TIERS, CONFIG, None) == []
    steps = LearningConfig(cluster_bits=0, category_fields=["role", "task", "step"])
    assert any(p.endswith("step:7") for _, p, _, _ in
               increments(outcome(), decision(), TIERS, steps, None))


def test_replicas_add_into_the_same_sums_and_a_reader_decays_them(store: TraceStore) -> None:
    a, b = EvidenceStore(store, CONFIG), EvidenceStore(store, CONFIG)
    now = 1_800_000_000.0
    a.add(increments(outcome(), decision(), TIERS, CONFIG, None), now)
    b.add(increments(outcome(quality=0.0), decision(), TIERS, CONFIG, None), now)
    read = a.read(TIERS, now)
    root = read[("team", "")]
    assert root[1, N] == pytest.approx(2.0) and root[1, WY] == pytest.approx(1.0)
    later = a.read(TIERS, now + 30 * DAY_S)[("team", "")]  # one half-life later
    assert later[1, N] == pytest.approx(1.0) and later[1, W2] == pytest.approx(0.5)
    assert later[1, TOTAL] == 2.0  # the revision counts outcomes, undecayed
    a.clear()
    assert a.read(TIERS, now) == {} and a.is_empty()


def test_an_older_stores_outcomes_are_summed_once(store: TraceStore) -> None:
    evidence = EvidenceStore(store, CONFIG)
    rows = [{**outcome(), **decision(), "received_at": 1_800_000_000.0 + i, "embedding": None}
            for i in range(5)]
    store.learning_rows = lambda limit, since=0.0: rows  # type: ignore[method-assign]
    assert evidence.backfill(TIERS, None) == 5
    sums = evidence.read(TIERS, 1_800_000_004.0)[("team", "role:agent/task:extract")]
    assert sums[1, TOTAL] == 5 and np.isclose(sums[1, N], 5, rtol=1e-5)


def test_replicas_starting_together_on_an_old_store_sum_its_outcomes_once(
        store: TraceStore) -> None:
    rows = [{**outcome(), **decision(), "received_at": 1_800_000_000.0 + i, "embedding": None}
            for i in range(4)]
    store.learning_rows = lambda limit, since=0.0: rows  # type: ignore[method-assign]
    first, second = EvidenceStore(store, CONFIG), EvidenceStore(store, CONFIG)
    assert first.is_empty() and second.is_empty()  # both saw an empty table at start
    assert first.backfill(TIERS, None) == 4
    assert second.backfill(TIERS, None) == 0  # its claim conflicts: it adds nothing
    sums = second.read(TIERS, 1_800_000_003.0)[("team", "role:agent/task:extract")]
    assert sums[1, TOTAL] == 4
