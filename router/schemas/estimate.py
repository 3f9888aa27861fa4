"""/spend's `estimate`: what following the current learned map buys against always-strongest,
estimated off-policy from logged decisions and their labelled outcomes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EstimateInterval(BaseModel):
    value: float | None = Field(description="The point estimate; null: not enough evidence.")
    low: float | None = Field(default=None, description="Bootstrap interval's lower end.")
    high: float | None = Field(default=None, description="Bootstrap interval's upper end.")


class Estimators(BaseModel):
    """One ratio by each estimator (router/decision/off_policy.py)."""

    ips: EstimateInterval = Field(description="Inverse propensity weighting.")
    snips: EstimateInterval = Field(description="Self-normalised inverse propensity weighting.")
    dr: EstimateInterval = Field(description="Doubly robust, the map's own per-tier quality "
                                             "(and each tier's estimated cost) as the direct "
                                             "model.")


class PolicyEstimate(BaseModel):
    """The map against always-strongest over one group of labelled decisions."""

    category: str | None = Field(description="The deciding category, as GET /map names it "
                                             "('cold': none has enough outcomes); null: every "
                                             "call.")
    calls: int = Field(description="Labelled decisions this figure rests on.")
    effective_calls: float = Field(description="Effective number of calls of the map's "
                                               "weighting, (sum w)^2 / sum w^2.")
    strongest_effective_calls: float = Field(description="The same for always-strongest's.")
    overlap: float = Field(description="Mean weight: the share of the map's choices the logged "
                                       "policy could have made (1: full overlap; the rest only "
                                       "DR's direct model speaks for).")
    unsupported: float = Field(description="The share of the map's choices the logged policy "
                                           "certainly could not have made (it took another "
                                           "tier with propensity 1); above 5%, IPS and SNIPS "
                                           "are withheld and DR rests on the map's own "
                                           "estimate for that share.")
    enough_evidence: bool
    note: str | None = Field(default=None, description="Why no figure, when there is none.")
    quality: Estimators = Field(description="The map's quality over always-strongest's.")
    cost: Estimators = Field(description="The map's cost over always-strongest's.")
    served_quality: float | None = Field(description="Mean quality the served tiers realised.")
    served_cost_usd: float | None = Field(description="Mean cost per call of what was served.")
    quality_vs_served: EstimateInterval = Field(
        description="DR: the map's quality over what was served (in shadow mode: the caller's "
                    "own models).")
    cost_vs_served: EstimateInterval = Field(
        description="DR: the map's cost over what was served.")


class SpendEstimate(BaseModel):
    """Off-policy: the current learned map at the quality target, against always-strongest,
    from the newest labelled decisions in the window (see docs/learning.md)."""

    quality_target: float
    map_revision: int = Field(description="Labelled outcomes the map has learned.")
    mode: Literal["routed", "shadow", "mixed", "none"] = Field(
        description="Whether the decisions were followed, shadow (the caller's own model "
                    "served), or both.")
    since: float | None = Field(description="The window's start (epoch seconds).")
    max_rows: int = Field(description="At most this many labelled decisions are read, the "
                                      "newest first.")
    truncated: bool = Field(description="The window held more than max_rows.")
    skipped: dict[str, int] = Field(description="Labelled decisions left out, by why.")
    resamples: int
    level: float = Field(description="Level of the intervals.")
    summary: str = Field(description="The overall figure in words.")
    overall: PolicyEstimate
    categories: list[PolicyEstimate] = Field(description="The categories with most calls.")
