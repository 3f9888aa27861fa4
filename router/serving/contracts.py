"""What a `RouterService` needs of the state objects it holds, and what scoring hands on.

The service is built once and never changed (`router.serving.service`); the things that do
change while it serves are objects it reads through these protocols: where decisions go
(`Recorder`: the closed loop and the decision log), the learned map (`MapSource`),
the exploration draws (`Explorer`) and model health (`Health`). Declared here so the service
module reads as the path of one decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from router.decision.categories import Clusters
from router.decision.features import CallView
from router.decision.health_view import HealthView
from router.decision.learned_map import LearnedMap
from router.decision.policy import ExplorationDraw
from router.schemas import RouteDecision, RouteRequest
from router.traces.rows import Seen


class Recorder(Protocol):
    """Where every decision goes once made (the closed loop: store, spend, drift, log)."""

    def record(self, request: RouteRequest, view: CallView, decision: RouteDecision,
               seen: Seen | None = None) -> None: ...


class MapSource(Protocol):
    """Where the current learned map is read (`router.serving.learner.Learner`): a frozen
    object, replaced whole by a rebuild, read once per batch."""

    map: LearnedMap
    clusters: Clusters | None


@dataclass(frozen=True)
class Scored:
    """A batch's model scores and what they were made from; `failure` says why the scores
    are NaN (then the rest is None)."""

    scores: np.ndarray
    failure: str | None = None
    embeddings: np.ndarray | None = None
    clusters: np.ndarray | None = None  # each call's embedding cluster (-1: none)
    confidence: np.ndarray | None = None  # the head's out-of-distribution guard, if it has one


class Explorer(Protocol):
    """The seeded source of exploration random numbers (state: it advances per decision)."""

    def draw(self) -> ExplorationDraw: ...


class Health(Protocol):
    """Model health as a decision reads it (`router.serving.model_health.ModelHealth`)."""

    def decision_view(self) -> HealthView | None:
        """Every model's state, with this decision's half-open probe draw."""
        ...
