"""The learned map: categories, posteriors, the decision rule and exploration.

Synthetic evidence (made-up outcome counts and success rates, not measured data): these check
the rule's arithmetic and its safety properties, not how well it routes real traffic.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from router.config import LearningConfig
from router.decision.categories import Clusters, Signals, lookup_paths, parent_of
from router.decision.learned_map import COLUMNS, LearnedMap, N, moved_categories
from router.decision.map_fit import empty_map, fit_map, shared_evidence

TIERS = ("medium", "large")
SCORES = (0.7, 0.8)  # the model's (synthetic) score of each tier, the same for every call


def tier_sums(outcomes: int, quality: float, score: float, category_outcomes: int) -> list[float]:
    """One tier's sums: `outcomes` served with mean label `quality`, weight 1, the model's
    score `score` over all `category_outcomes` of the category."""
    return [outcomes, outcomes * quality, outcomes, outcomes, outcomes * quality,
            outcomes * score, category_outcomes * score, category_outcomes, outcomes]


def sums(per_tier: Mapping[str, tuple[int, float]], scores: tuple[float, ...] = SCORES
         ) -> np.ndarray:
    total = sum(n for n, _ in per_tier.values())
    return np.array([tier_sums(*per_tier.get(t, (0, 0.0)), score, total)
                     for t, score in zip(TIERS, scores, strict=True)], dtype=float)


def config(**kw: object) -> LearningConfig:
    return LearningConfig(**{"min_outcomes": 30, "cluster_bits": 0, **kw})


def decide(m: LearnedMap, signals: Signals, target: float = 0.95, confidence: float = 1.0,
           scores: tuple[float, ...] = SCORES) -> str:
    verdict = m.assess(signals, None, scores, confidence, target)
    return TIERS[int(np.argmax(np.asarray(verdict.bounds) >= target - 1e-9))]


def test_categories_are_the_signal_path_finest_first_then_cluster_then_root() -> None:
    s = Signals("team", "agent", "extract", "3")
    assert lookup_paths(s, ["role", "task"], "cluster:5@abc") == [
        "role:agent/task:extract", "role:agent", "cluster:5@abc", ""]
    assert lookup_paths(s, ["role", "task", "step"], None)[0] == "role:agent/task:extract/step:3"
    assert lookup_paths(Signals(), ["role", "task"], None) == [""]
    assert parent_of("role:agent/task:extract") == "role:agent"
    assert parent_of("cluster:5@abc") == "" and parent_of("") is None
    hashed = Clusters(4, 8)  # a model without clusters of its own: seeded directions
    ids = hashed.of(np.random.default_rng(0).standard_normal((100, 8)))
    assert ids.min() >= 0 and ids.max() < 16 and len(set(ids.tolist())) > 4
    assert (Clusters(4, 8).of(np.ones((1, 8))) == hashed.of(np.ones((1, 8)))).all()
    assert hashed.path(3) == "cluster:3@hash4" and hashed.path(-1) is None
    centroids = np.eye(8)[:3]  # the model's own clusters: the nearest centroid
    nearest = Clusters(4, 8, centroids, cut="m1")
    assert nearest.of(np.array([[0.1, 2.0, 0, 0, 0, 0, 0, 0]])).tolist() == [1]
    assert nearest.path(1) == "cluster:1@m1"
    assert hashed.of(np.ones((2, 5))).tolist() == [-1, -1]  # another dimension: none


def test_cold_the_strongest_tier_unless_cold_tier_or_a_confident_prior() -> None:
    call = Signals("k", "agent", "greet")
    assert decide(empty_map(TIERS, config()), call) == "large"
    assert decide(empty_map(TIERS, config(cold_tier="medium")), call) == "medium"
    confident = empty_map(TIERS, config(prior_confidence=0.6))
    # the prior's ratio 0.7 / 0.8 = 0.875 passes a target of 0.85 only when it counts
    assert decide(confident, call, target=0.85, confidence=0.9) == "medium"
    assert decide(confident, call, target=0.85, confidence=0.3) == "large"
    verdict = confident.assess(call, None, SCORES, 0.3, 0.85)
    assert verdict.category is None and "prior_confidence" in verdict.detail


def test_steps_go_to_large_cold_and_move_down_once_their_step_has_evidence() -> None:
    """Greeting, extraction and a spam yes/no: identical pooled scores, cold to large; once
    each has outcomes on both tiers the easy ones move down and the hard one stays."""
    cfg = config()
    steps = {"greet": (0.97, 0.98), "extract": (0.95, 0.96), "spam": (0.96, 0.96),
             "plan": (0.55, 0.9)}
    for task in steps:
        assert decide(empty_map(TIERS, cfg), Signals("k", "agent", task)) == "large"
    evidence = {("k", ""): sum(sums({"medium": (200, q[0]), "large": (200, q[1])})
                               for q in steps.values())}
    evidence[("k", "role:agent")] = evidence[("k", "")]
    for task, (medium, large) in steps.items():
        evidence[("k", f"role:agent/task:{task}")] = sums({"medium": (200, medium),
                                                          "large": (200, large)})
    learned = fit_map(evidence, TIERS, cfg)
    chosen = {task: decide(learned, Signals("k", "agent", task)) for task in steps}
    assert chosen == {"greet": "medium", "extract": "medium", "spam": "medium", "plan": "large"}
    verdict = learned.assess(Signals("k", "agent", "plan"), None, SCORES, 1.0, 0.95)
    assert verdict.category == "k/role:agent/task:plan"
    assert verdict.bounds[0] < 0.7 and verdict.quality[1] > verdict.quality[0]
    assert verdict.detail is not None and verdict.detail.startswith(
        "task plan: medium 0.") and "over 400 outcomes, below the target 0.95; " in (
        verdict.detail) and verdict.detail.endswith("of calls to medium (its 90% bound 0.56) "
                                                    "keep 0.95")
    easy = learned.assess(Signals("k", "agent", "greet"), None, SCORES, 1.0, 0.95)
    ratio, low, high = easy.detail.split(": medium ")[1].split(" of large ")[0], *(
        easy.detail.split("[")[1].split("]")[0].split(", "))
    assert easy.detail.startswith("task greet: medium") and "over 400 outcomes" in easy.detail
    assert float(low) <= float(ratio) <= float(high) and float(low) >= 0.95


def test_the_bound_needs_evidence_a_few_good_outcomes_do_not_move_a_call_down() -> None:
    few = fit_map({("k", ""): sums({"medium": (16, 0.94), "large": (16, 0.94)})}, TIERS,
                  config())
    assert decide(few, Signals("k")) == "large"  # 32 outcomes: equal rates, a wide bound
    many = fit_map({("k", ""): sums({"medium": (400, 0.99), "large": (400, 0.99)})}, TIERS,
                   config())
    assert decide(many, Signals("k")) == "medium"


def test_a_sparse_category_borrows_the_coarser_level_and_its_parent() -> None:
    cfg = config()
    evidence = {("k", ""): sums({"medium": (300, 0.97), "large": (300, 0.97)}),
                ("k", "role:agent"): sums({"medium": (300, 0.97), "large": (300, 0.97)}),
                ("k", "role:agent/task:new"): sums({"medium": (3, 0.0), "large": (3, 1.0)})}
    learned = fit_map(evidence, TIERS, cfg)
    verdict = learned.assess(Signals("k", "agent", "new"), None, SCORES, 1.0, 0.95)
    assert verdict.category == "k/role:agent"  # 6 outcomes: the parent decides
    fine = learned.entries[("k", "role:agent/task:new")]
    parent = learned.entries[("k", "role:agent")]
    # the sparse child starts from its parent (worth prior_strength outcomes), not from 0/3
    assert 0.3 < fine.quality[0] < parent.quality[0]


def test_the_calls_own_score_shifts_its_categorys_bound_only_when_score_weight_says() -> None:
    evidence = {("k", ""): sums({"medium": (300, 0.95), "large": (300, 0.97)})}
    learned = fit_map(evidence, TIERS, config(score_weight=1.0))
    mean = learned.assess(Signals("k"), None, SCORES, 1.0, 0.95)
    easier = learned.assess(Signals("k"), None, (0.78, 0.8), 1.0, 0.95)
    harder = learned.assess(Signals("k"), None, (0.5, 0.8), 1.0, 0.95)
    assert harder.bounds[0] < mean.bounds[0] < easier.bounds[0]
    shipped = fit_map(evidence, TIERS, config())  # score_weight 0: the category's bound alone
    for scores in ((0.5, 0.8), SCORES, (0.78, 0.8)):
        verdict = shipped.assess(Signals("k"), None, scores, 1.0, 0.95)
        assert verdict.bounds[0] == pytest.approx(mean.bounds[0])


def test_ten_thousand_task_names_keep_the_live_categories_bounded() -> None:
    cfg = config(max_categories=500)
    evidence = {("k", ""): sums({"medium": (10_000, 0.9), "large": (10_000, 0.95)})}
    for i in range(10_000):
        evidence[("k", f"task:t{i}")] = sums({"medium": (1 + i % 7, 0.9), "large": (1, 0.95)},
                                            )
    learned = fit_map(evidence, TIERS, cfg)
    assert len(learned.entries) <= 501 and learned.dropped >= 9_499
    assert learned.snapshot()["categories"] == len(learned.entries)
    verdict = learned.assess(Signals("k", task="t9999999"), None, SCORES, 1.0, 0.95)
    assert verdict.category == "k"  # unknown or dropped: the coarser level


def test_a_key_cannot_carry_a_shared_category_alone() -> None:
    cfg = config(share_across_keys=True)
    easy = sums({"medium": (500, 0.99), "large": (500, 0.99)})
    alone = fit_map({("a", ""): easy, ("a", "task:x"): easy}, TIERS, cfg)
    # key b has no outcomes of its own; a's are not shared since a is the only supplier
    assert decide(alone, Signals("b", task="x")) == "large"
    assert decide(alone, Signals("a", task="x")) == "medium"  # a's own calls learn from a
    small = sums({"medium": (20, 0.99), "large": (20, 0.99)})
    pooled = shared_evidence({("a", "task:x"): easy, ("b", "task:x"): small})
    outcomes = pooled[("*", "task:x")][:, N].sum()
    assert outcomes == pytest.approx(80.0)  # a capped at b's 40: no key over half
    off = fit_map({("a", ""): easy, ("a", "task:x"): easy}, TIERS, config())
    assert ("*", "task:x") not in off.entries


def test_drift_names_the_categories_that_moved() -> None:
    cfg = config()
    before = fit_map({("k", ""): sums({"medium": (300, 0.95), "large": (300, 0.95)}),
                      ("k", "task:x"): sums({"medium": (300, 0.95), "large": (300, 0.95)})},
                     TIERS, cfg)
    after = fit_map({("k", ""): sums({"medium": (300, 0.93), "large": (300, 0.95)}),
                     ("k", "task:x"): sums({"medium": (300, 0.6), "large": (300, 0.95)})},
                    TIERS, cfg)
    assert moved_categories(before, after) == ("k/task:x",)
    assert decide(after, Signals("k", task="x")) == "large"


def test_exploration_aims_at_the_unknown_and_is_capped_in_cost() -> None:
    cfg = config(explore_cost=0.01, probe_share=0.02)
    near = fit_map({("k", ""): sums({"medium": (15, 0.94), "large": (60, 0.96)})}, TIERS, cfg)
    far = fit_map({("k", ""): sums({"medium": (300, 0.5), "large": (300, 0.96)})}, TIERS, cfg)
    easy = fit_map({("k", ""): sums({"medium": (400, 0.99), "large": (400, 0.99)})}, TIERS, cfg)
    near_v = near.assess(Signals("k"), None, SCORES, 1.0, 0.95, explore_rate=0.5)
    far_v = far.assess(Signals("k"), None, SCORES, 1.0, 0.95, explore_rate=0.5)
    easy_v = easy.assess(Signals("k"), None, SCORES, 1.0, 0.95, explore_rate=0.5)
    assert near_v.explore[0] > 0.05 and far_v.explore[0] == 0.0
    # the expected cost of exploring medium stays within explore_cost of large's quality
    gap = near.entries[("k", "")].ratio[1] - near.entries[("k", "")].ratio[0]
    assert near_v.explore[0] * gap <= 0.01 + 1e-9
    # a category decided below the strongest tier probes it now and then
    assert easy_v.explore == (0.0, pytest.approx(0.02))
    assert near.assess(Signals("k"), None, SCORES, 1.0, 0.95).explore == (0.0, 0.0)  # rate 0
    capped = near.assess(Signals("k"), None, SCORES, 1.0, 0.95, explore_rate=0.001)
    assert sum(capped.explore) == pytest.approx(0.001)


def test_cold_exploration_tries_a_cheaper_tier_within_the_cost_cap() -> None:
    verdict = empty_map(TIERS, config()).assess(Signals("k"), None, (0.9, 0.92), 1.0, 0.95,
                                                explore_rate=0.1)
    assert verdict.bounds == (0.0, 1.0)
    assert 0.0 < verdict.explore[0] <= 0.1


def test_fit_is_pure_and_the_map_is_frozen() -> None:
    evidence = {("k", ""): sums({"medium": (100, 0.9), "large": (100, 0.95)})}
    a, b = fit_map(evidence, TIERS, config()), fit_map(evidence, TIERS, config())
    assert np.array_equal(a.entries[("k", "")].bound, b.entries[("k", "")].bound)
    assert evidence[("k", "")].shape == (2, len(COLUMNS))
    with pytest.raises(AttributeError):
        a.revision = 3  # type: ignore[misc]
    assert a.revision == 200


def test_the_allowance_sends_a_share_whose_expected_quality_is_the_target() -> None:
    """Synthetic posterior: medium's ratio to large about 0.89, its bound below 0.95. The
    share p to medium makes p x bound + (1 - p) x 1 equal the target within rounding."""
    arc = sums({"medium": (400, 0.80), "large": (400, 0.90)})
    evidence = {("k", ""): arc, ("k", "task:arc"): arc}
    learned = fit_map(evidence, TIERS, config())
    verdict = learned.assess(Signals("k", None, "arc"), None, SCORES, 1.0, 0.95)
    assert verdict.bounds[0] < 0.95 and verdict.bounds[1] == 1.0
    assert verdict.split is not None
    base, cheap, share = verdict.split
    assert (base, cheap) == (1, 0) and 0.0 < share < 1.0
    assert share * verdict.bounds[0] + (1 - share) * 1.0 == pytest.approx(0.95, abs=1e-6)
    assert verdict.detail is not None
    assert verdict.detail.endswith(f"{share:.0%} of calls to medium (its 90% bound "
                                   f"{verdict.bounds[0]:.2f}) keep 0.95")
    # a looser target spends more of the allowance; the strongest-only target none
    looser = learned.assess(Signals("k", None, "arc"), None, SCORES, 1.0, 0.9).split
    assert looser is not None and looser[2] > share
    assert learned.assess(Signals("k", None, "arc"), None, SCORES, 1.0, 1.0).split is None


def test_the_allowance_goes_to_the_cheaper_tier_that_saves_most() -> None:
    """Synthetic three-tier posterior: small far below large, medium near it."""
    tiers = ("small", "medium", "large")
    rows = [(400, 0.45, 0.5), (400, 0.80, 0.7), (400, 0.90, 0.8)]
    evidence = {("k", ""): np.array([tier_sums(n, q, s, 1200) for n, q, s in rows])}
    learned = fit_map(evidence, tiers, config())
    call = (Signals("k"), None, (0.5, 0.7, 0.8), 1.0, 0.95)
    near = learned.assess(*call, costs=(1.0, 4.0, 20.0)).split
    far = learned.assess(*call, costs=(0.1, 19.0, 20.0)).split
    assert near is not None and far is not None
    assert near[:2] == (2, 1) and far[:2] == (2, 0)
    bounds = learned.assess(*call).bounds
    for _, t, p in (near, far):
        assert p * bounds[t] + (1 - p) * 1.0 == pytest.approx(0.95, abs=1e-6)


def test_cold_and_sparse_categories_still_go_to_the_strongest_tier_whole() -> None:
    sparse = {("k", ""): sums({"medium": (10, 0.80), "large": (10, 0.90)})}  # under 30
    for learned in (empty_map(TIERS, config()), fit_map(sparse, TIERS, config())):
        verdict = learned.assess(Signals("k", None, "arc"), None, SCORES, 1.0, 0.95, 0.1)
        assert verdict.bounds == (0.0, 1.0) and verdict.split is None
        assert verdict.category is None
