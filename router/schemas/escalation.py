"""Escalation: a /route call that follows a decision whose answer failed the caller's check.

The caller tried the decided tier, ran a check it already has (the JSON parses, the tool call
fits its schema, the tests pass, the answer is no refusal) or read the answer's confidence, and
asks again with ``escalate_from``: the router records that answer as a failure of its tier for
that call and answers with a stronger tier, in the same run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.schemas.numbers import JsonNumber

EscalationReason = Literal[
    "check_failed", "invalid_json", "schema_mismatch", "tool_error", "tests_failed", "refusal",
    "low_confidence", "rejected", "other",
]


class Escalation(BaseModel):
    """Why the answer of the decision escalated from was not good enough."""

    model_config = ConfigDict(extra="forbid")
    reason: EscalationReason = Field(
        description="What failed: the caller's own check (check_failed, invalid_json, "
                    "schema_mismatch, tool_error, tests_failed, refusal), the answer's "
                    "confidence (low_confidence), a person or a judge (rejected), or other.")
    logprob_mean: Annotated[float, Field(le=0.0, ge=-1000.0, allow_inf_nan=False),
                            JsonNumber] | None = Field(
        default=None,
        description="The failed answer's mean token log-probability (<= 0), when the "
                    "provider returned log-probabilities.")
    detail: str | None = Field(default=None, max_length=1000,
                               description="Free text for the ledger (at most 1,000 "
                                           "characters); stored, never routed on.")


class EscalationReport(BaseModel):
    """Escalations and what routing saved net of them, over a period or a run: the cheap calls
    that failed and were escalated from are counted as spent (wasted), and the saving is
    against sending every call (each escalation chain once) to the strongest tier."""

    escalations: int = Field(description="Calls escalated from (each one a wasted call).")
    wasted_usd: float = Field(description="What the calls escalated from cost (reported, else "
                                          "estimated).")
    calls: int = Field(description="Calls made, the wasted ones included (shadow calls not).")
    spent_usd: float = Field(description="What every call made cost, wasted ones included.")
    always_strongest_usd: float = Field(
        description="What the same calls would have cost on the strongest tier: one call per "
                    "chain (a first decision and its escalations), at the strongest tier's "
                    "prices with the call's tokens (reported, else estimated).")
    saved_usd: float = Field(description="always_strongest_usd - spent_usd: the saving net of "
                                         "the wasted calls (negative: routing cost more).")
    saved_fraction: float | None = Field(description="saved_usd / always_strongest_usd.")
