"""GET /runs/{run_id}: the ledger of one agent run and its final outcome, and the list of
recent runs; POST /runs/{run_id}/outcome: that outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from router.schemas.escalation import EscalationReport


def iso_utc(epoch: float) -> str:
    """Epoch seconds as ISO 8601 in UTC, to the millisecond: 2026-12-04T20:33:28.123Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


# Held as epoch seconds (the ledger adds and compares them), written as ISO 8601 in JSON.
Moment = Annotated[
    float,
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time",
                    "examples": ["2026-12-04T20:33:28.123Z"]}, mode="serialization"),
]

RunKey = tuple[str, str]  # (the API key's name, "" when the service is open; run_id)


class RunStep(BaseModel):
    """One routed call of a run, with what its feedback reported (null until it came back)."""

    decision_id: str
    created_at: Moment = Field(description="When the call was decided (ISO 8601, UTC).")
    step: str | None
    role: str | None
    task: str | None
    tier: str | None = Field(description="The tier that served it (the feedback's, else "
                                         "decided; a shadow call's: its own model's).")
    model: str | None = Field(description="The model that served it (model_used, else "
                                          "decided; a shadow call's: the request's `model`).")
    reason: str
    shadow: bool = Field(description="The caller did not follow the decision (shadow mode).")
    tokens_in_estimated: int
    tokens_in: int | None = Field(description="Reported by feedback.")
    tokens_out: int | None = Field(description="Reported by feedback.")
    cost_estimated_usd: float = Field(description="The decision's estimate.")
    cost_reported_usd: float | None = Field(description="The cost feedback reported.")
    cost_usd: float = Field(description="Reported where it came back, else estimated.")
    attempt: int = Field(default=1, description="The call's place in its escalation chain: 1 "
                                                "for a first decision.")
    escalated_from: str | None = Field(
        default=None, description="The decision this call escalates from.")
    escalated_to: str | None = Field(
        default=None, description="The decision this call was escalated to: its answer "
                                  "failed, its cost was wasted.")


class RunOutcome(BaseModel):
    """POST /runs/{run_id}/outcome: how the whole run ended (success and/or quality), once."""

    model_config = ConfigDict(extra="forbid")

    success: bool | None = Field(default=None, strict=True)
    quality: float | None = Field(default=None, ge=0.0, le=1.0, strict=True,
                                  allow_inf_nan=False, description="0-1.")

    @model_validator(mode="after")
    def _something(self) -> RunOutcome:
        if self.success is None and self.quality is None:
            raise ValueError("give 'success', 'quality' or both")
        return self


class RunOutcomeInfo(BaseModel):
    success: bool | None
    quality: float | None
    api_key: str | None = Field(description="The key that reported it.")
    received_at: Moment


class RunOutcomeReceipt(BaseModel):
    run_id: str
    status: Literal["recorded", "duplicate"] = Field(
        description="duplicate: the same outcome was already recorded (nothing changed).")
    outcome: RunOutcomeInfo


class RunLedger(BaseModel):
    """A run's calls in order, its total and its most expensive step."""

    run_id: str
    api_keys: list[str | None] = Field(description="The keys whose calls made the run.")
    calls: int
    total_usd: float = Field(description="Reported costs where they came back, else estimates.")
    estimated_usd: float = Field(description="The part of total_usd that is estimated.")
    reported_usd: float = Field(description="The part of total_usd that feedback reported.")
    started_at: Moment = Field(description="Its first call (ISO 8601, UTC).")
    last_call_at: Moment = Field(description="Its last call (ISO 8601, UTC).")
    expires_at: Moment = Field(description="When the run ends without another call "
                                           "(runs.expire_after_s after its last call; "
                                           "ISO 8601, UTC).")
    steps: list[RunStep]
    most_expensive: RunStep
    outcome: RunOutcomeInfo | None = Field(default=None, description="The run's final "
                                           "outcome, once POST /runs/{run_id}/outcome gave it.")
    escalations: EscalationReport | None = Field(
        default=None, description="The run's escalations, what its calls escalated from "
                                  "cost, and its saving net of them against always-strongest.")


class RunSummary(BaseModel):
    run_id: str
    api_key: str | None
    calls: int
    total_usd: float = Field(description="Reported costs where they came back, else estimates.")
    last_call_at: Moment = Field(description="Its last call (ISO 8601, UTC).")


class RunList(BaseModel):
    """One page of the live runs, the latest call first."""

    runs: list[RunSummary]
    next_offset: int | None = Field(
        default=None, description="The `offset` of the next page; null: this is the last.")


class RunCostFigures(BaseModel):
    """Cost per call, per run and per successful run of a set of runs."""

    runs: int = Field(description="Runs with a call in the period (calls carrying a run_id; "
                                  "a run is one key's run_id).")
    calls: int
    cost_per_call_usd: float
    cost_per_run_usd: float
    with_outcome: int = Field(description="Runs whose final outcome was reported.")
    successful: int = Field(description="Of them, success: true (or quality >= 0.5 without "
                                        "success).")
    cost_per_successful_run_usd: float | None = Field(
        description="What the runs with an outcome cost in all, over the successful ones "
                    "(failures' cost included); null without a success.")


class RevisionRunCosts(RunCostFigures):
    """The runs whose first call in the period was decided by a learned map of a revision in
    [revision_from, revision_to] (labelled outcomes learned since the last reset)."""

    revision_from: int | None = Field(description="null: no learned map decided the run's "
                                                  "first call (learning off, a degraded call, "
                                                  "or a call stored before revisions were).")
    revision_to: int | None


class RunCosts(RunCostFigures):
    """Cost per run beside cost per call, since the report's `since`: a cheaper step that
    makes a run longer or fail saves nothing, and only this shows it."""

    by_revision: list[RevisionRunCosts] = Field(
        default_factory=list,
        description="The same figures by the map revision of each run's first call in the "
                    "period, oldest first: one group per revision, or at most 8 bands of about "
                    "equal runs when there are more (the no-map group first).")
