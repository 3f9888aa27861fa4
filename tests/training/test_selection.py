"""Model selection ranks candidates on the knob's sweep as it is served, the raw pair APGR
beside it, over held-out groups given as a parameter. Synthetic scores and labels only."""

from __future__ import annotations

import numpy as np
import pytest

from router.errors import RouterError
from training.selection import (
    Candidate,
    held_out_groups,
    leave_one_group_out,
    pair_apgrs,
    policy_curve,
    policy_pair_apgrs,
)

TIERS = ("small", "large")


def pair_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, 2, n), np.ones(n)], axis=1).astype(float)
    return rng.uniform(size=(n, 2)), labels


def test_the_policy_sweep_runs_from_all_weak_to_all_strong() -> None:
    scores, labels = pair_data()
    share, quality = policy_curve(scores, labels[:, 0], labels[:, 1])
    assert share[0] == 0.0 and share[-1] == 1.0  # knob 0: the cheaper tier; 1: the stronger
    assert quality[0] == pytest.approx(labels[:, 0].mean()) and quality[-1] == 1.0


def test_a_perfect_ratio_traces_the_oracle_and_noise_does_half() -> None:
    scores, labels = pair_data()
    ratio = np.where(labels[:, 0] == 1, 0.97, 0.4) + np.linspace(-0.02, 0.02, len(labels))
    perfect = np.stack([ratio * 0.9, np.full(len(labels), 0.9)], axis=1)  # failures lowest
    oracle = 1 - (1 - labels[:, 0].mean()) / 2  # every failure first, at no loss
    assert policy_pair_apgrs(perfect, labels, TIERS)["small/large"] == pytest.approx(oracle)
    assert policy_pair_apgrs(scores, labels, TIERS)["small/large"] == pytest.approx(0.5, abs=0.1)


def test_the_served_sweep_reads_the_ratio_not_the_weak_score() -> None:
    """Calls where the strong tier's score is high too look easy by the raw weak score but
    not by the ratio the policy serves: the two APGRs rank such a scorer differently."""
    _, labels = pair_data(seed=1)
    good = labels[:, 0] == 1
    weak = np.where(good, 0.6, 0.7)  # the raw weak score ranks the failures first
    strong = np.where(good, 0.61, 0.99)  # ... the ratio ranks them last
    scores = np.stack([weak, strong], axis=1)
    served = policy_pair_apgrs(scores, labels, TIERS)["small/large"]
    raw = pair_apgrs(scores, labels, TIERS)["small/large"]
    oracle = 1 - (1 - labels[:, 0].mean()) / 2
    assert served == pytest.approx(oracle) and raw < 0.3


def test_held_out_groups_are_a_parameter_and_an_empty_match_is_an_error() -> None:
    groups = np.array(["a", "b", "c", "a"])
    assert held_out_groups(groups, None) == ["a", "b", "c"]
    assert held_out_groups(groups, ["c", "zz", "a"]) == ["c", "a"]
    with pytest.raises(RouterError, match=r"none of the selection groups \['x', 'y'\].*'a'"):
        held_out_groups(groups, ["x", "y"])


def test_selection_reports_both_and_chooses_on_the_served_sweep() -> None:
    rng = np.random.default_rng(2)
    n, d = 300, 8
    X = rng.normal(size=(n, d))
    hard = X[:, 0] > 0
    labels = np.stack([np.where(hard, 0.0, 1.0), np.ones(n)], axis=1)
    groups = np.array(["g1", "g2", "g3"])[np.arange(n) % 3]
    candidates = [Candidate("tqr", {"head": "tqr", "C": 1.0, "n_clusters": 4, "ood_low": None,
                                    "ood_high": None}),
                  Candidate("knn", {"head": "knn", "k": 5, "calibration": None})]
    result = leave_one_group_out(X, np.zeros((n, 5)), labels, np.ones(n), groups, TIERS,
                                 candidates, eval_groups=["g1", "g3"])
    assert {r["group"] for r in result.table} == {"g1", "g3"}
    assert all({"apgr", "pair_apgr"} <= set(r) for r in result.table)
    assert set(result.means) == set(result.pair_means) == {"tqr", "knn"}
    assert result.best.name == max(result.means, key=result.means.__getitem__)
    with pytest.raises(RouterError, match="none of the selection groups"):
        leave_one_group_out(X, np.zeros((n, 5)), labels, np.ones(n), groups, TIERS,
                            candidates, eval_groups=["nope"])
