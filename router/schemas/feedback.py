"""POST /feedback and GET /spend: outcomes (TRACES.md records too), receipts, spend rows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from router.schemas.chat import ChatMessage, Id, exactly_one_input
from router.schemas.escalation import EscalationReport
from router.schemas.health import ATTEMPTS_DOC, ERROR_DOC, MAX_ATTEMPTS, Attempt, ErrorKind
from router.schemas.numbers import Cost, Count, JsonNumber, Unit
from router.schemas.route import misspelt_field
from router.schemas.runs import RunCosts


class _Labelled(BaseModel):
    """A label, as in TRACES.md: `quality`, or `success` as its shorthand (quality wins).

    `success` is declared before `quality` so a missing label is reported on 'quality'.
    """

    success: bool | None = Field(default=None, strict=True)
    quality: Unit | None = Field(default=None, validate_default=True)

    @field_validator("quality")
    @classmethod
    def _a_label(cls, quality: float | None, info: ValidationInfo) -> float | None:
        if quality is None and info.data.get("success") is None:
            raise ValueError("give 'quality' (a number in [0, 1]) or 'success' (true or false)")
        return quality

    def label(self) -> float:
        return self.quality if self.quality is not None else float(bool(self.success))


# What an outcome-only feedback must carry at least one of: something that happened.
OBSERVED = ("quality", "success", "cost_usd", "tokens_in", "tokens_out", "latency_ms", "error")


class Feedback(BaseModel):
    """How a routed call went (POST /feedback); one outcome per decision_id.

    A label (`quality`, or `success` as its shorthand) teaches the learning state; without one
    the outcome (tokens, cost, latency, error: what a gateway knows, no invented label) counts
    for spend and model health only.
    """

    model_config = ConfigDict(extra="forbid")
    decision_id: Id
    success: bool | None = Field(default=None, strict=True)
    quality: Unit | None = None
    model_used: str | None = Field(default=None, min_length=1, max_length=256)
    cost_usd: Cost | None = None
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    cached_tokens_in: Count | None = Field(
        default=None, description="Of tokens_in, how many were cached input (priced as such).")
    latency_ms: Cost | None = None
    error: ErrorKind | None = Field(default=None, description=ERROR_DOC)
    attempts: list[Attempt] | None = Field(default=None, max_length=MAX_ATTEMPTS,
                                           description=ATTEMPTS_DOC)
    fallback_used: bool = Field(default=False, strict=True)
    check_passed: bool | None = Field(
        default=None, strict=True,
        description="Whether the caller's check of this answer passed (a verifiable call: its "
                    "JSON parsed, its tests passed...). Teaches the learned map how often this "
                    "tier's answers pass in the call's category, and, with a label, how good "
                    "passed answers are; the first check result of a decision stands (an "
                    "escalation already said it failed). Never inferred from a label.")

    @model_validator(mode="after")
    def _something_observed(self) -> Feedback:
        if all(getattr(self, name) is None for name in OBSERVED):
            raise ValueError(f"an outcome needs at least one of {', '.join(OBSERVED)}")
        return self

    @field_validator("cached_tokens_in")
    @classmethod
    def _cached_within_input(cls, cached: int | None, info: ValidationInfo) -> int | None:
        tokens_in = info.data.get("tokens_in")
        if cached is not None and tokens_in is not None and cached > tokens_in:
            raise ValueError(f"cached_tokens_in ({cached}) must be at most tokens_in "
                             f"({tokens_in}): cached input tokens are part of the input")
        return cached

    def label(self) -> float | None:
        """The quality label, or None for an outcome-only report."""
        if self.quality is not None:
            return self.quality
        return None if self.success is None else float(self.success)


class TraceRecord(_Labelled):
    """A call in the TRACES.md format, e.g. one that bypassed the router; unknown fields kept."""

    model_config = ConfigDict(extra="allow")
    prompt_id: Id | None = None
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    model: str = Field(min_length=1, max_length=256)
    tier: str | None = Field(default=None, max_length=64)
    cost_usd: Cost | None = None
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    latency_ms: Cost | None = None
    task: str | None = Field(default=None, max_length=64)
    run_id: Id | None = None
    role: Id | None = None
    step: Id | None = None
    user: Id | None = None
    decision_id: Id | None = None
    propensity: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False),
                          JsonNumber] | None = None
    source: Id | None = None
    timestamp: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_input(self) -> TraceRecord:
        return exactly_one_input(self)


class FeedbackReceipt(BaseModel):
    """`stored` the first time, `duplicate` when it says nothing the stored outcome lacks,
    `completed` when it added to the stored outcome (a label after an outcome-only report,
    tokens after a label, a reported cost over an estimate); never a change of what is stored."""

    feedback_id: str
    decision_id: str | None
    status: Literal["stored", "duplicate", "completed"]
    ignored_fields: list[str] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="Fields of the report that were not used, and `detail` says why (a label "
                    "for a decision escalated from: the escalation recorded its failure).")
    detail: str | None = Field(default=None, exclude_if=lambda v: v is None)


class SpendRow(BaseModel):
    key: str | None
    calls: int
    cost_usd: float = Field(description="actual_usd + estimated_usd.")
    actual_usd: float = Field(description="Cost reported in feedback.")
    estimated_usd: float = Field(description="Estimated where no real cost came back.")
    estimated_calls: int


# What spend can be grouped by: the request's attribution ids, where it went, and which API key.
SpendKey = Literal["role", "run_id", "step", "tier", "model", "user", "api_key"]


class ShadowReport(BaseModel):
    """Shadow mode's answer to "what would following the router have saved?" (the calls whose
    outcome came back; `routed_usd` prices the router's picks with the same tokens)."""

    calls: int = Field(description="Shadow decisions in the period.")
    with_outcome: int = Field(description="Of them, the ones whose outcome came back.")
    followed_usd: float = Field(description="What the models followed cost (reported, else "
                                            "estimated).")
    routed_usd: float = Field(description="What the router's picks would have cost.")
    saved_usd: float = Field(description="followed_usd - routed_usd (negative: it costs more).")
    saved_fraction: float | None = Field(description="saved_usd / followed_usd.")
    same_tier_share: float | None = Field(
        description="Share of calls where the router picked the tier that was followed.")
    followed_quality: float | None = Field(
        description="Mean quality the followed models realised (labelled outcomes).")
    routed_predicted_quality: float | None = Field(
        description="Mean predicted quality of the router's picks on the same calls.")


class SpendReport(BaseModel):
    by: str
    since: float | None
    rows: list[SpendRow] = Field(description="One page: the costliest first.")
    next_offset: int | None = Field(
        default=None, description="The `offset` of the next page; null: this is the last.")
    shadow: ShadowReport | None = Field(
        default=None, description="What shadow decisions would have saved; absent: none.")
    runs: RunCosts | None = Field(
        default=None, description="Cost per run and per successful run; absent: no runs.")
    escalations: EscalationReport | None = Field(
        default=None, description="Escalations in the period, what the calls escalated from "
                                  "cost, and the saving net of them against always-strongest.")


def with_suggestions(errors: list[Any], model: type[BaseModel]) -> list[Any]:
    """Schema errors where an unknown field is named, with the field it is a typo of (as
    /route does: `sucess` -> did you mean 'success'?), that field also given as the limit."""
    out = []
    for err in errors:
        loc = tuple(err.get("loc") or ())
        if err.get("type") == "extra_forbidden" and loc and isinstance(loc[-1], str):
            name = loc[-1]
            near = misspelt_field(name, model.model_fields)
            hint = f": did you mean {near!r}?" if near else (
                f" (known fields: {', '.join(model.model_fields)})")
            err = {**err, "msg": f"unknown field {name!r}{hint}",
                   "ctx": {**(err.get("ctx") or {}), "limit_value": near}}
        out.append(err)
    return out

