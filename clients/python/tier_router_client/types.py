"""Typed answers: a routing `Decision` (the service's, or a fail-open one) and a feedback
`Receipt`. Plain frozen dataclasses, built from the JSON the service sends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Decision:
    """Which model to call for one request, and what to try next.

    A fail-open decision (`fail_open` True) was made here, not by the service: it has no
    `decision_id`, its `reason` is ``"fail_open"`` and its `detail` names why the router
    could not answer. Feedback on it is never posted (there is no decision to attach it to).
    """

    model: str
    fallbacks: list[str]
    reason: str
    tier: str | None = None
    decision_id: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    estimated_tokens_in: int | None = None
    estimated_cost_usd: float | None = None
    router_version: str | None = None
    detail: str | None = None
    propensity: float | None = None
    confidence: float | None = None
    requested_model: str | None = None
    ignored_fields: list[str] | None = None
    plan: str | None = None  # a verifiable call's: "direct" or "try_cheap_first"
    attempt: int | None = None
    escalated_from: str | None = None
    fail_open: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        """The service's answer; fields this client version does not know are dropped."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "fail_open"}
        return cls(**known)

    @property
    def models(self) -> list[str]:
        """The model, then its fallbacks, in the order to try them."""
        return [self.model, *[m for m in self.fallbacks if m != self.model]]


@dataclass(frozen=True)
class Receipt:
    """The service's receipt for an outcome: `stored` the first time, `duplicate` when it
    adds nothing, `completed` when it added to the stored outcome."""

    feedback_id: str
    decision_id: str | None
    status: Literal["stored", "duplicate", "completed"]
    ignored_fields: list[str] | None = None  # a label for a decision escalated from
    detail: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        return cls(feedback_id=data["feedback_id"], decision_id=data.get("decision_id"),
                   status=data["status"], ignored_fields=data.get("ignored_fields"),
                   detail=data.get("detail"))
