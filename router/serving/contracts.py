"""What a `RouterService` needs of the state objects it holds, and what scoring hands on.

The service is built once and never changed (`router.serving.service`); the things that do
change while it serves are objects it reads through these protocols: where decisions go
(`Recorder`: the closed loop and the decision log), the online learning state (`Adapter`),
the exploration draws (`Explorer`) and model health (`Health`). Declared here so the service
module reads as the path of one decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from router.decision.features import CallView
from router.decision.health_view import HealthView
from router.decision.policy import ExplorationDraw
from router.schemas import RouteDecision, RouteRequest
from router.traces.rows import Seen


class Recorder(Protocol):
    """Where every decision goes once made (the closed loop: store, spend, drift, log)."""

    def record(self, request: RouteRequest, view: CallView, decision: RouteDecision,
               seen: Seen | None = None) -> None: ...


class Adapter(Protocol):
    """The online learning state as a decision reads it (`router.traces.learning`)."""

    @property
    def revision(self) -> int: ...

    def adapt(self, embeddings: np.ndarray, views: Sequence[CallView],
              scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(adapted (n, T) scores, (n,) thinness in (0, 1]: the share of the exploration rate
        a call gets)."""
        ...


@dataclass(frozen=True)
class Scored:
    """A batch's scores (after adaptation) and what they were made from; `failure` says why
    the scores are NaN (then the rest is None)."""

    scores: np.ndarray
    failure: str | None = None
    embeddings: np.ndarray | None = None
    prior: np.ndarray | None = None  # the model's own scores
    thin: np.ndarray | None = None
    confidence: np.ndarray | None = None  # the head's out-of-distribution guard, if it has one


class Explorer(Protocol):
    """The seeded source of exploration random numbers (state: it advances per decision)."""

    def draw(self) -> ExplorationDraw: ...


class Health(Protocol):
    """Model health as a decision reads it (`router.serving.model_health.ModelHealth`)."""

    def decision_view(self) -> HealthView | None:
        """Every model's state, with this decision's half-open probe draw."""
        ...
