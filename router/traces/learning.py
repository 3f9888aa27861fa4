"""The online learning state: what this deployment's own outcomes say, as one score transform.

Every accepted, labelled outcome of a routed call (``POST /feedback`` with ``quality`` or
``success``, stored for the first time) is one `Observation`: the embedding the classifier saw
(when the store keeps features), the tier that answered, the label, the model's own score of
that tier at decision time (``prior_scores``) and the weight 1/propensity (clipped at
``max_weight``), which the neighbourhood evidence uses. The state keeps the newest
``capacity`` of them, so memory is bounded (capacity x (dimension + 4) float32), and reads
them three ways:

1. **Recalibration per tier**: a Platt map ``logit p' = a_t + b_t logit p`` fitted on that
   tier's (prior score, label) pairs, shrunk toward the identity (a = 0, b = 1) by a Gaussian
   penalty worth ``calibration_strength`` observations. It makes a tier's predicted success
   match its realised success on this traffic, so ``quality_target`` means what it says here;
   it is monotone, so it never reorders prompts within a tier. Unweighted: the maps calibrate
   the population the router serves (the tiers it chose), which is what ``quality_target`` is
   read against; 1/propensity weights would calibrate every (prompt, tier) pair instead and
   let the few explored calls (weight up to ``max_weight``) dominate the fit.
2. **Neighbourhood evidence per tier**: for a call, the ``neighbours`` most similar
   observations of each tier (cosine), each weighted by ``exp((cos - 1) / bandwidth)`` times
   its weight (none below ``min_similarity``); with ``n_t`` that evidence and ``s_t`` its
   successes, the adapted score is ``(m p'_t + s_t) / (m + n_t)`` with ``m = prior_strength``:
   the recalibrated prediction where evidence is thin, the local success rate where it is
   dense.
3. **A final map per tier**, Platt again, fitted on each outcome's adapted score as the state
   without that outcome scores it (leave one out; `recalibrate`, in the background), so the
   scores the policy reads are calibrated after the evidence too, not only before it.

`adjust` is a few numpy operations per batch (one matrix product with the stored embeddings,
one partial sort per tier). `thinness` (``m / (m + least evidence of any tier)``, at least
``explore_floor``) scales the exploration rate, so exploration goes where evidence is thin.

The state is derived from the trace store and nothing else: `ClosedLoop` rebuilds it from the
newest labelled outcomes there (`TraceStore.learning_rows`) at start and every ``refresh_s``,
so it survives a restart and replicas on one database converge to the same state; between
refreshes each replica adds its own outcomes as they are acknowledged. A reset records a time
in the store; outcomes received before it are never read again. ``revision`` counts the
outcomes learned since the last reset; decisions say it in ``router_version`` (``+s<revision>``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.config import LearningConfig
from router.decision.features import CallView
from router.traces.rows import decode_embedding
from router.traces.store import TraceStore

EPS = 1e-4


@dataclass(frozen=True)
class Observation:
    """One labelled outcome of a routed call, as the learning state reads it."""

    feedback_id: str
    tier: str
    label: float
    weight: float  # 1 / propensity of the decision, clipped
    prior: float | None  # the model's score of `tier` at decision time
    embedding: np.ndarray | None  # float32, unit length; None when features are not kept


def model_of(router_version: str | None) -> str:
    """The model part of a decision's router_version (``model+s<revision>`` -> ``model``)."""
    return (router_version or "").split("+s", 1)[0]


def observation_of(
    outcome: dict[str, Any], decision: dict[str, Any], max_weight: float,
    model_version: str | None = None,
) -> Observation | None:
    """The observation of an outcome row and its decision row (stored or still queued); None
    for one that cannot teach (not a routed decision, degraded, or nothing kept to learn from).
    A decision of another model than `model_version` keeps its evidence (the outcome does not
    depend on the model) but not its prior score, which calibrated that other model."""
    if decision.get("reason") == "degraded":
        return None
    tier = outcome.get("tier")
    if not tier:
        return None
    priors = json.loads(decision["prior_scores"]) if decision.get("prior_scores") else {}
    prior = priors.get(tier)
    if model_version is not None and model_of(decision.get("router_version")) != model_version:
        prior = None
    embedding = decode_embedding(decision.get("embedding"))
    if prior is None and embedding is None:
        return None
    propensity = float(decision.get("propensity") or 1.0)
    weight = min(1.0 / max(propensity, EPS), max_weight)
    return Observation(str(outcome["feedback_id"]), str(tier), float(outcome["quality"]),
                       weight, None if prior is None else float(prior), embedding)


def read_observations(
    store: TraceStore, config: LearningConfig, model_version: str | None = None
) -> tuple[list[Observation], int, float]:
    """(newest observations oldest first, revision, reset time) as the store holds them."""
    reset_at = store.learning_reset_at()
    rows = store.learning_rows(config.capacity, reset_at)
    revision = store.learned_count(reset_at)
    observations = [o for r in rows
                    if (o := observation_of(r, r, config.max_weight, model_version)) is not None]
    return observations, revision, reset_at


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_platt(
    prior: np.ndarray, label: np.ndarray, weight: np.ndarray, strength: float,
    iterations: int = 25,
) -> tuple[float, float]:
    """(a, b) of ``logit p' = a + b logit p``, penalised toward (0, 1) by `strength`."""
    if len(prior) == 0:
        return 0.0, 1.0
    z = _logit(prior)
    w = weight / weight.mean()
    a, b = 0.0, 1.0
    for _ in range(iterations):  # Newton's method on a concave, penalised log-likelihood
        p = _sigmoid(a + b * z)
        r = w * (label - p)
        h = w * p * (1 - p)
        grad = np.array([r.sum() - strength * a, (r * z).sum() - strength * (b - 1)])
        hess = np.array([[h.sum() + strength, (h * z).sum()],
                         [(h * z).sum(), (h * z * z).sum() + strength]])
        step = np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
        a, b = a + float(step[0]), b + float(step[1])
        if abs(step).max() < 1e-6:
            break
    return a, b


class LearningState:
    """The newest labelled outcomes of one deployment and the score transform they give."""

    def __init__(self, config: LearningConfig, tiers: Sequence[str], dimension: int,
                 model_version: str | None = None):
        self.config = config
        self.tiers = list(tiers)
        self.dimension = dimension
        self.model_version = model_version  # whose scores the calibration maps correct
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        c = self.config.capacity
        self._embedding = np.zeros((c, self.dimension), np.float32)
        self._has_embedding = np.zeros(c, bool)
        self._tier = np.full(c, -1, np.int16)
        self._label = np.zeros(c, np.float32)
        self._weight = np.zeros(c, np.float32)
        self._prior = np.full(c, np.nan, np.float32)
        self._ids: list[str | None] = [None] * c
        self._index: dict[str, int] = {}
        self._next = 0
        self._size = 0
        self._revision = 0
        self._stale = 0  # observations since the last `recalibrate`
        self._recent: list[Observation] = []  # observed since the last `load`
        self._platt = np.tile(np.array([0.0, 1.0]), (len(self.tiers), 1))
        self._final = self._platt.copy()

    @property
    def revision(self) -> int:
        """Outcomes learned since the last reset (0: the model's prior alone)."""
        return self._revision

    @property
    def size(self) -> int:
        return self._size

    @property
    def stale(self) -> int:
        """Outcomes observed since the final maps were last refitted."""
        return self._stale

    # Learning

    def observe(self, obs: Observation) -> bool:
        """Add one outcome (once per feedback id); False if it was already in or cannot teach."""
        with self._lock:
            added = self._add(obs)
            if added:
                self._revision += 1
                self._stale += 1
                self._recent.append(obs)
                self._refit(self.tiers.index(obs.tier))
            return added

    def load(
        self, observations: Sequence[Observation], revision: int, keep_recent: bool = True
    ) -> None:
        """Replace everything with `observations` (oldest first) and the store's revision.

        With `keep_recent`, outcomes this replica observed since the previous load and the
        store's rows do not hold yet (committed after they were read) are added back."""
        with self._lock:
            recent = self._recent if keep_recent else []
            self._clear()
            for obs in observations[-self.config.capacity:]:
                self._add(obs)
            self._revision = revision
            self._revision += sum(1 for obs in recent if self._add(obs))
            for t in range(len(self.tiers)):
                self._refit(t)
        self.recalibrate()

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _add(self, obs: Observation) -> bool:
        if obs.tier not in self.tiers or obs.feedback_id in self._index:
            return False
        slot = self._next
        old = self._ids[slot]
        if old is not None:
            self._index.pop(old, None)
        self._ids[slot] = obs.feedback_id
        self._index[obs.feedback_id] = slot
        self._tier[slot] = self.tiers.index(obs.tier)
        self._label[slot] = obs.label
        self._weight[slot] = obs.weight
        self._prior[slot] = np.nan if obs.prior is None else obs.prior
        ok = obs.embedding is not None and obs.embedding.shape == (self.dimension,)
        self._has_embedding[slot] = ok
        if ok:
            assert obs.embedding is not None
            norm = float(np.linalg.norm(obs.embedding))
            self._embedding[slot] = obs.embedding / (norm if norm > 0 else 1.0)
        self._next = (slot + 1) % self.config.capacity
        self._size = min(self._size + 1, self.config.capacity)
        return True

    def _refit(self, t: int) -> None:
        rows = (self._tier == t) & ~np.isnan(self._prior)
        self._platt[t] = fit_platt(self._prior[rows].astype(float), self._label[rows].astype(float),
                                   np.ones(int(rows.sum())), self.config.calibration_strength)

    def recalibrate(self, chunk: int = 512) -> None:
        """Refit the final map of each tier on its outcomes' adapted scores, each scored as the
        state without that outcome would score it (leave one out), so the tier the policy
        picks is predicted as often as it succeeds. O(capacity^2 x dimension): run it in the
        background (`ClosedLoop` does at every refresh), not per call."""
        with self._lock:
            size = self._size
            rows = np.flatnonzero(~np.isnan(self._prior[:size]))
            if len(rows) == 0:
                self._final = np.tile(np.array([0.0, 1.0]), (len(self.tiers), 1))
                return
            tier_of, prior = self._tier[rows].astype(int), self._prior[rows].astype(float)
            scores = np.empty(len(rows))
            for start in range(0, len(rows), chunk):
                part, span = rows[start:start + chunk], slice(start, start + chunk)
                at = (np.arange(len(part)), tier_of[span])
                full = np.full((len(part), len(self.tiers)), 0.5)
                full[at] = prior[span]
                scores[span] = self._shrunk(self._embedding[part], full, exclude=part)[at]
            final = np.tile(np.array([0.0, 1.0]), (len(self.tiers), 1))
            for t in range(len(self.tiers)):
                mine = tier_of == t
                final[t] = fit_platt(scores[mine], self._label[rows][mine].astype(float),
                                     np.ones(int(mine.sum())), self.config.calibration_strength)
            self._final = final
            self._stale = 0

    # Reading (the request path: no lock, a snapshot of references)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """(n, T) scores through each tier's recalibration map."""
        return _platt(self._platt, scores)

    def evidence(
        self, embeddings: np.ndarray, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n_t, s_t): per call and tier, the neighbourhood's weighted evidence and successes;
        `exclude` (one buffer slot per call) leaves that observation out."""
        n, tiers = len(embeddings), len(self.tiers)
        count, success = np.zeros((n, tiers)), np.zeros((n, tiers))
        if self._size == 0 or not self._has_embedding.any():
            return count, success
        size = self._size
        keep = self._has_embedding[:size]
        sims = embeddings.astype(np.float32) @ self._embedding[:size].T  # (n, size)
        if exclude is not None:
            sims[np.arange(n), exclude] = -np.inf
        tier_of = self._tier[:size]
        k, bandwidth = self.config.neighbours, self.config.bandwidth
        for t in range(tiers):
            cols = np.flatnonzero(keep & (tier_of == t))
            if len(cols) == 0:
                continue
            near = sims[:, cols]  # (n, m): this tier's observations only
            if len(cols) > k:  # the k most similar, then the kernel on those alone
                top = np.argpartition(-near, k - 1, axis=1)[:, :k]
                near, cols = np.take_along_axis(near, top, axis=1), cols[top]
            kernel = np.exp((near - 1.0) / bandwidth) * self._weight[cols]
            kernel[near < self.config.min_similarity] = 0.0
            count[:, t] = kernel.sum(axis=1)
            success[:, t] = (kernel * self._label[cols]).sum(axis=1)
        return count, success

    def adapt(self, embeddings: np.ndarray, views: Sequence[CallView],
              scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the service applies: (`adjust`'s scores, `thinness`), one evidence pass."""
        if self._size == 0:
            return scores, np.ones(len(scores))
        count, success = self.evidence(embeddings)
        return _platt(self._final, self._shrink(scores, count, success)), self._thin(count)

    def adjust(self, embeddings: np.ndarray, views: Sequence[CallView],
               scores: np.ndarray) -> np.ndarray:
        """The adapted (n, T) scores: recalibrated, shrunk toward the local evidence, mapped."""
        return self.adapt(embeddings, views, scores)[0]

    def thinness(self, embeddings: np.ndarray) -> np.ndarray:
        """(n,) in [explore_floor, 1]: how thin the least-known tier's evidence is near a call."""
        return self._thin(self.evidence(embeddings)[0])

    def _thin(self, count: np.ndarray) -> np.ndarray:
        m = self.config.prior_strength
        return np.maximum(m / (m + count.min(axis=1)), self.config.explore_floor)

    def _shrink(self, scores: np.ndarray, count: np.ndarray, success: np.ndarray) -> np.ndarray:
        m = self.config.prior_strength
        return (m * self.calibrate(scores) + success) / (m + count)

    def _shrunk(self, embeddings: np.ndarray, scores: np.ndarray,
                exclude: np.ndarray | None = None) -> np.ndarray:
        return self._shrink(scores, *self.evidence(embeddings, exclude))

    def snapshot(self) -> dict[str, Any]:
        """What an operator inspects: size, revision, per-tier counts, realised vs predicted."""
        size = self._size
        tiers: dict[str, Any] = {}
        for t, name in enumerate(self.tiers):
            rows = self._tier[:size] == t
            with_prior = rows & ~np.isnan(self._prior[:size])
            a, b = self._platt[t]
            fa, fb = self._final[t]
            tiers[name] = {
                "outcomes": int(rows.sum()),
                "with_features": int((rows & self._has_embedding[:size]).sum()),
                "realised": _mean(self._label[:size][rows]),
                "predicted": _mean(self._prior[:size][with_prior]),
                "recalibration": {"a": round(float(a), 4), "b": round(float(b), 4)},
                "final_map": {"a": round(float(fa), 4), "b": round(float(fb), 4)},
            }
        return {"revision": self._revision, "size": size, "capacity": self.config.capacity,
                "stale": self._stale, "tiers": tiers}


def _platt(params: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return _sigmoid(params[:, 0] + params[:, 1] * _logit(scores))


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


__all__ = ["LearningState", "Observation", "fit_platt", "model_of", "observation_of",
           "read_observations"]
