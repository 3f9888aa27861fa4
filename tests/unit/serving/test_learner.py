"""The learner: one frozen map, swapped whole by rebuilds from the store; decisions made while
it rebuilds see a whole map, before or after, never a partial one. Synthetic outcomes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.config import LearningConfig, StoreConfig
from router.decision.categories import Signals
from router.decision.map_fit import empty_map, fit_map
from router.errors import StoreError
from router.serving.learner import Learner
from router.traces.evidence import increments
from router.traces.store import TraceStore

TIERS = ("medium", "large")
CONFIG = LearningConfig(cluster_bits=0, min_outcomes=20)
NOW = 1_800_000_000.0
CALL = Signals("team", "agent", "extract")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TraceStore]:
    s = TraceStore(StoreConfig(url=f"sqlite:///{tmp_path / 'traces.db'}")).start()
    yield s
    s.close()


def decision(task: str = "extract") -> dict[str, Any]:
    return {"api_key": "team", "role": "agent", "task": task, "propensity": 1.0,
            "reason": "classifier", "prior_scores": json.dumps({"medium": 0.7, "large": 0.8})}


def teach(learner: Learner, medium: float, n: int = 150) -> None:
    rows = []
    for i in range(n):
        for tier, q in (("medium", medium), ("large", 0.97)):
            label = 1.0 if (i % 100) < q * 100 else 0.0
            rows += increments({"tier": tier, "quality": label}, decision(), TIERS, CONFIG, None)
    learner.evidence.add(rows, NOW)


def test_a_rebuild_makes_outcomes_move_the_map_and_a_restart_keeps_it(store: TraceStore) -> None:
    learner = Learner(CONFIG, TIERS, 8, store, clock=lambda: NOW).start()
    cold = learner.map.assess(CALL, None, (0.7, 0.8), 1.0, 0.95)
    assert cold.category is None and cold.bounds == (0.0, 1.0)
    assert learner.observe({"tier": "medium", "quality": 1.0}, decision())
    assert not learner.observe({"tier": "medium", "quality": None}, decision())
    assert learner.stale == 1 and learner.due(1.0) and not learner.due(0.5)
    teach(learner, medium=0.99)
    learner.rebuild()
    warm = learner.map.assess(CALL, None, (0.7, 0.8), 1.0, 0.95)
    assert warm.category == "team/role:agent/task:extract" and warm.bounds[0] >= 0.95
    again = Learner(CONFIG, TIERS, 8, store, clock=lambda: NOW).start()  # a restart
    assert again.map.revision == learner.map.revision == 301
    assert again.map.assess(CALL, None, (0.7, 0.8), 1.0, 0.95).bounds == warm.bounds
    learner.reset()
    assert learner.map.revision == 0 and learner.report()["categories"] == 0


def test_decisions_during_rebuilds_always_see_one_whole_map(store: TraceStore) -> None:
    learner = Learner(CONFIG, TIERS, 8, store, clock=lambda: NOW).start()
    # the only maps that may ever be served: empty, after good outcomes, after bad ones
    teach(learner, medium=0.99)
    good = learner.rebuild()
    learner.evidence.clear()
    teach(learner, medium=0.5)
    bad = learner.rebuild()
    whole = {m.assess(CALL, None, (0.7, 0.8), 1.0, 0.95).bounds
             for m in (empty_map(TIERS, CONFIG), good, bad)}
    assert len(whole) == 3
    # fit is pure: the store's evidence fitted again gives the map the learner serves
    assert bad.assess(CALL, None, (0.7, 0.8), 1.0, 0.95).bounds == fit_map(
        learner.evidence.read(TIERS, NOW), TIERS, CONFIG).assess(
        CALL, None, (0.7, 0.8), 1.0, 0.95).bounds

    stop = threading.Event()
    seen: set[tuple[float, ...]] = set()
    errors: list[BaseException] = []

    enough = threading.Event()  # the rebuilds swapped both maps in a few times

    def rebuild_forever() -> None:
        medium, rebuilds = 0.99, 0
        while not stop.is_set():
            learner.evidence.clear()
            teach(learner, medium)
            learner.rebuild()
            medium = 0.5 if medium == 0.99 else 0.99
            rebuilds += 1
            if rebuilds >= 2:
                enough.set()

    def decide_forever() -> None:
        try:
            while not stop.is_set():
                learned = learner.map  # what the service reads once per batch
                seen.add(learned.assess(CALL, None, (0.7, 0.8), 1.0, 0.95).bounds)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=rebuild_forever)]
    threads += [threading.Thread(target=decide_forever) for _ in range(3)]
    for t in threads:
        t.start()
    enough.wait(60.0)  # a count of rebuilds, not a time: a loaded machine rebuilds slowly
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert seen <= whole and len(seen) >= 2  # several maps served, each of them whole


def test_a_category_that_goes_quiet_goes_sparse_and_its_coarser_level_decides(
    store: TraceStore,
) -> None:
    """Forgetting: outcomes lose half their weight every half_life_days; a task with no new
    outcomes falls below min_outcomes and its parent (still fed by another task) decides."""
    now = [NOW]
    learner = Learner(CONFIG, TIERS, 8, store, clock=lambda: now[0]).start()
    teach(learner, medium=0.99)  # task extract, at NOW
    assert learner.rebuild().assess(CALL, None, (0.7, 0.8), 1.0, 0.95).category == (
        "team/role:agent/task:extract")
    later = NOW + 4 * CONFIG.half_life_days * 86400.0  # 300 outcomes weigh 18.75 now
    rows = []
    for _ in range(100):  # another task keeps the role's category fed
        for tier in TIERS:
            rows += increments({"tier": tier, "quality": 1.0}, decision("summarise"), TIERS,
                               CONFIG, None)
    learner.evidence.add(rows, later)
    now[0] = later
    verdict = learner.rebuild().assess(CALL, None, (0.7, 0.8), 1.0, 0.95)
    assert verdict.category == "team/role:agent"
    assert learner.map.entries[("team", "role:agent/task:extract")].outcomes == (
        pytest.approx(300 / 16))


def test_a_decisions_check_teaches_once_and_its_label_once_and_a_restart_keeps_it(
    store: TraceStore,
) -> None:
    """Synthetic checks: each decision's first check result stands; a passed answer's label
    counts once, whether it comes with the check, before it or after it."""
    learner = Learner(CONFIG, TIERS, 8, store, clock=lambda: NOW).start()
    first = {**decision(), "decision_id": "d1", "tier": "medium"}
    assert learner.observe_check(first, True)
    assert not learner.observe_check(first, False)  # the first result stands
    assert learner.observe({"tier": "medium", "quality": 0.8}, first)  # its label, later
    assert not learner.checked.label("d1")  # once
    failed = {**decision(), "decision_id": "d2", "tier": "medium"}
    assert learner.observe_check(failed, False)
    assert not learner.checked.label("d2")  # a failed answer's label says nothing of passes
    early = {**decision(), "decision_id": "d3", "tier": "medium"}
    store.execute([("INSERT INTO outcomes (feedback_id, decision_id, received_at, body_sha256, "
                    "quality, cost_estimated, fallback_used) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [("f3", "d3", NOW, "x", 0.6, 1, 0)])])
    assert learner.observe_check(early, True)  # reads the label stored before it
    shadow = {**decision(), "decision_id": "d4", "tier": "medium", "shadow": 1}
    assert not learner.observe_check(shadow, True)  # nobody followed it: nothing checked
    learner.rebuild()
    assert learner.map.checks is not None
    root = learner.map.checks.entries[("team", "")]
    assert root.tier_runs == (3.0, 0.0)
    restarted = Learner(CONFIG, TIERS, 8, store, clock=lambda: NOW).start()
    assert restarted.map.checks is not None
    again = restarted.map.checks.entries[("team", "role:agent/task:extract")]
    assert again.tier_runs == (3.0, 0.0)
    # 2 of 3 passed; passed answers labelled 0.8 and 0.6 (a uniform prior worth 2 at the root)
    assert abs(root.pass_rate[0] - (1.0 + 2.0) / 5.0) < 1e-9
    assert abs(root.passed_quality[0] - (1.0 + 1.4) / 4.0) < 1e-9


def test_a_rebuild_the_store_refuses_keeps_its_outcomes_waiting(
    store: TraceStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    learner = Learner(CONFIG, TIERS, 8, store, clock=lambda: NOW).start()
    assert learner.observe({"tier": "medium", "quality": 1.0}, decision())
    before = learner.map

    def refuse(*_: Any, **__: Any) -> Any:
        raise StoreError("database is locked")

    monkeypatch.setattr(learner.evidence, "read_marked", refuse)
    assert learner.rebuild() is before and learner.stale == 1 and learner.due(1.0)
    monkeypatch.undo()
    assert learner.rebuild() is not before and learner.stale == 0


FEEDBACK = st.lists(st.tuples(
    st.sampled_from(["outcome", "check", "both"]),
    st.sampled_from(TIERS),
    st.sampled_from(["extract", "plan", None]),
    st.floats(0.0, 1.0),  # the label
    st.sampled_from([1.0, 0.5, 0.05]),  # the decision's propensity
    st.booleans(),  # the check passed
    st.floats(0.0, 90.0),  # days since the first outcome (the decay)
), max_size=60)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(events=FEEDBACK, target=st.sampled_from([0.9, 0.95, 0.99]))
def test_any_feedback_rebuilds_into_a_map_that_answers_in_range(
    tmp_path_factory: pytest.TempPathFactory, events: list[Any], target: float,
) -> None:
    """Synthetic feedback in any order, any mix of labels, checks and propensities, spread
    over months: every rebuild fits (a failed fit would freeze the map), and the map's
    answers are probabilities."""
    path = tmp_path_factory.mktemp("fuzz") / "traces.db"
    store = TraceStore(StoreConfig(url=f"sqlite:///{path}")).start()
    try:
        now = [NOW]
        learner = Learner(LearningConfig(cluster_bits=0, min_outcomes=5, prior_confidence=None),
                          TIERS, 8, store, clock=lambda: now[0]).start()
        for i, (kind, tier, task, label, propensity, passed, days) in enumerate(events):
            now[0] = NOW + days * 86_400
            made = {**decision(task or "extract"), "task": task, "tier": tier,
                    "decision_id": f"d{i}", "propensity": propensity}
            if kind in ("outcome", "both"):
                learner.observe({"tier": tier, "quality": label}, made)
            if kind in ("check", "both"):
                learner.observe_check(made, passed, label if kind == "both" else None)
            if i % 7 == 0:
                learner.rebuild()
        learned = learner.rebuild()
        for task in ("extract", "plan", None):
            verdict = learned.assess(Signals("team", "agent", task), None, (0.7, 0.8), 1.0,
                                     target, 0.1, (1.0, 3.0))
            assert all(0.0 <= v <= 1.0 for v in (*verdict.bounds, *verdict.quality))
            assert all(v >= 0.0 for v in verdict.explore) and sum(verdict.explore) <= 0.1 + 1e-9
        for entry in (learned.checks.entries.values() if learned.checks else ()):
            assert all(0.0 <= v <= 1.0 for v in (*entry.pass_rate, *entry.passed_quality,
                                                  *entry.passed_lower, *entry.pass_upper))
    finally:
        store.close()
