"""The online learning state: recalibration, neighbourhood evidence, bounds, load and reset.

Observations here are synthetic (random unit vectors, made-up labels): they check the maths and
the bookkeeping, not routing quality (the replay does that on real outcomes).
"""

from __future__ import annotations

import numpy as np
import pytest

from router.config import LearningConfig
from router.traces.learning import LearningState, Observation, fit_platt, observation_of
from router.traces.rows import encode_embedding

TIERS = ["small", "medium", "large"]


def unit(rng: np.random.Generator, centre: np.ndarray, noise: float = 0.02) -> np.ndarray:
    v = centre + noise * rng.normal(size=centre.shape)
    return (v / np.linalg.norm(v)).astype(np.float32)


def centres(rng: np.random.Generator, n: int = 2, dim: int = 384) -> list[np.ndarray]:
    return [c / np.linalg.norm(c) for c in rng.normal(size=(n, dim))]


def test_fit_platt_is_the_identity_without_evidence_and_learns_a_shift() -> None:
    assert fit_platt(np.array([]), np.array([]), np.array([]), 30.0) == (0.0, 1.0)
    rng = np.random.default_rng(0)
    prior = rng.uniform(0.4, 0.8, 2000)
    label = (rng.random(2000) < np.clip(prior + 0.15, 0, 1)).astype(float)  # under-predicted
    a, b = fit_platt(prior, label, np.ones(2000), 30.0)
    z = np.log(prior / (1 - prior))
    calibrated = 1 / (1 + np.exp(-(a + b * z)))
    assert abs(calibrated.mean() - label.mean()) < 0.02 < abs(prior.mean() - label.mean())
    a_strong, _ = fit_platt(prior, label, np.ones(2000), 1e7)
    assert abs(a_strong) < 1e-3  # a strong prior keeps the identity


def test_local_evidence_moves_a_tier_where_it_was_seen_and_nowhere_else() -> None:
    rng = np.random.default_rng(1)
    here, there = centres(rng)
    state = LearningState(LearningConfig(calibration_strength=1e6), TIERS, 384)
    for i in range(200):  # near `here`, small always succeeds although the model said 0.3
        state.observe(Observation(f"f{i}", "small", 1.0, 1.0, 0.3, unit(rng, here)))
    state.recalibrate()
    scores = np.array([[0.3, 0.5, 0.9], [0.3, 0.5, 0.9]])
    adapted = state.adjust(np.stack([unit(rng, here), unit(rng, there)]), [], scores)
    assert adapted[0, 0] > 0.8  # evidence near `here`
    assert adapted[1, 0] < 0.4  # far from `there`: the kernel tail only (e^-5 each)
    assert adapted[0, 2] == pytest.approx(0.9, abs=1e-6)  # large: never observed
    thin = state.thinness(np.stack([unit(rng, here), unit(rng, there)]))
    assert thin[0] == thin[1] == 1.0  # medium and large are unknown everywhere


def test_thinness_falls_with_evidence_of_every_tier_down_to_the_floor() -> None:
    rng = np.random.default_rng(2)
    (here,) = centres(rng, 1)
    state = LearningState(LearningConfig(explore_floor=0.25), TIERS, 384)
    before = state.thinness(unit(rng, here)[None])[0]
    for i in range(300):
        state.observe(Observation(f"f{i}", TIERS[i % 3], 1.0, 1.0, 0.5, unit(rng, here, 0.01)))
    after = state.thinness(unit(rng, here, 0.01)[None])[0]
    assert before == 1.0 and after == 0.25


def test_recalibration_matches_the_realised_success_of_a_tier() -> None:
    rng = np.random.default_rng(3)
    state = LearningState(LearningConfig(), TIERS, 384)
    for i in range(1000):  # no features kept: calibration only
        prior = float(rng.uniform(0.5, 0.8))
        label = float(rng.random() < prior + 0.15)
        state.observe(Observation(f"f{i}", "large", label, 1.0, prior, None))
    state.recalibrate()
    priors = rng.uniform(0.5, 0.8, 500)
    scores = np.column_stack([priors, priors, priors])
    adapted = state.adjust(np.zeros((500, 384), np.float32), [], scores)
    assert adapted[:, 2].mean() == pytest.approx(priors.mean() + 0.15, abs=0.03)
    assert np.allclose(adapted[:, 0], priors)  # small: never observed, unchanged
    assert np.all(np.diff(adapted[np.argsort(priors), 2]) >= -1e-9)  # monotone


def test_one_outcome_counts_once_and_memory_is_bounded() -> None:
    rng = np.random.default_rng(4)
    state = LearningState(LearningConfig(capacity=16), TIERS, 384)
    obs = Observation("same", "small", 1.0, 1.0, 0.5, unit(rng, centres(rng, 1)[0]))
    assert state.observe(obs) and not state.observe(obs) and state.revision == 1
    for i in range(40):
        state.observe(Observation(f"f{i}", "medium", 0.0, 1.0, 0.5, None))
    assert state.size == 16 and state.revision == 41
    assert state.snapshot()["tiers"]["small"]["outcomes"] == 0  # the oldest went first
    assert not state.observe(Observation("x", "xl", 1.0, 1.0, 0.5, None))  # unknown tier


def test_load_replaces_the_state_but_keeps_what_the_store_did_not_hold_yet() -> None:
    state = LearningState(LearningConfig(), TIERS, 384)
    stored = [Observation(f"s{i}", "small", 1.0, 1.0, 0.5, None) for i in range(3)]
    state.observe(stored[0])
    state.observe(Observation("late", "large", 0.0, 1.0, 0.5, None))  # committed after the read
    state.load(stored, revision=3)
    assert state.size == 4 and state.revision == 4
    state.load(stored, revision=3, keep_recent=False)  # after a reset: nothing carried over
    assert state.size == 3 and state.revision == 3
    state.reset()
    assert state.size == 0 and state.revision == 0
    scores = np.array([[0.2, 0.4, 0.6]])
    assert state.adjust(np.zeros((1, 384), np.float32), [], scores) is scores


def test_observation_of_rows_weights_by_propensity_and_skips_what_cannot_teach() -> None:
    vector = np.ones(384, np.float32) / np.sqrt(384)
    decision = {"reason": "explore", "propensity": 0.05, "embedding": encode_embedding(vector),
                "prior_scores": '{"small": 0.4, "large": 0.9}'}
    outcome = {"feedback_id": "d1", "tier": "small", "quality": 1.0}
    obs = observation_of(outcome, decision, max_weight=10.0)
    assert obs is not None and obs.weight == 10.0 and obs.prior == 0.4
    assert obs.embedding is not None and obs.embedding.shape == (384,)
    assert observation_of(outcome, {**decision, "reason": "degraded"}, 10.0) is None
    assert observation_of(outcome, {"reason": "classifier"}, 10.0) is None  # nothing kept
    assert observation_of({**outcome, "tier": None}, decision, 10.0) is None
    theirs = {**decision, "router_version": "old-model+s12"}
    mine = observation_of(outcome, theirs, 10.0, model_version="old-model")
    other = observation_of(outcome, theirs, 10.0, model_version="new-model")
    assert mine is not None and mine.prior == 0.4
    assert other is not None and other.prior is None and other.embedding is not None
