"""POST /verify: a cheap answer's confidence (and check results) in, accept or escalate out."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.schemas.chat import Id
from router.schemas.numbers import JsonNumber
from router.schemas.route import RouteDecision, RouteRequest


class VerifyRequest(BaseModel):
    """A routed call's answer, as its confidence and (optionally) the caller's checks."""

    model_config = ConfigDict(extra="forbid")
    decision_id: Id
    logprob_mean: Annotated[float, JsonNumber] = Field(
        le=0.0, ge=-1000.0, allow_inf_nan=False,
        description="The answer's mean token log-probability (<= 0).")
    checks: dict[Annotated[str, Field(min_length=1, max_length=64)], bool] | None = Field(
        default=None, max_length=32,
        description="The caller's checks of the answer by name (true: passed), at most 32. "
                    "A failed one escalates; checked answers are the evidence the category's "
                    "threshold is learned from.")
    request: RouteRequest | None = Field(
        default=None, description="The call's /route body: when the answer is escalated, the "
                                  "next decision is made from it (else POST /route with "
                                  "escalate_from).")


class VerifyAnswer(BaseModel):
    """`accept` the answer, or `escalate` (with the next decision when the request came)."""

    action: Literal["accept", "escalate"]
    decision_id: str
    category: str = Field(description="Where the threshold was learned: the API key and task.")
    threshold: float | None = Field(
        description="The category's learned logprob_mean threshold; null: not enough evidence "
                    "yet, nothing is accepted on confidence alone.")
    evidence: int = Field(description="Checked answers the category's threshold rests on.")
    detail: str
    next: RouteDecision | None = Field(
        default=None, description="The escalation's decision (with `request`).")
