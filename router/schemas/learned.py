"""The learned map as GET /map answers it: one row per live category
(router/decision/map_view.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Why = Literal["evidence", "prior", "pin", "cold"]


class MapTier(BaseModel):
    """What one category has learned of one tier."""

    tier: str
    calls: int | None = Field(description="Decisions for this tier since the last learning "
                                          "reset (None: a cluster category, not counted).")
    explored: int | None = Field(description="Of them, exploration's.")
    outcomes: int | None = Field(description="Labelled outcomes this tier served.")
    effective_outcomes: float = Field(description="Outcomes after decay and 1/propensity "
                                                  "weights: what the estimate rests on.")
    quality: float = Field(description="Posterior mean quality (0-1).")
    ratio: float = Field(description="Quality relative to the strongest tier's.")
    ratio_low: float = Field(description="Lower bound of `ratio` at learning.bound.")
    ratio_high: float = Field(description="Upper bound of `ratio` at the same level.")


class MapCategory(BaseModel):
    """One category: its path, per tier what it learned, its choice at the target and why."""

    category: str = Field(description="key/role:R/task:T (or key/cluster:N@cut); '-' no key, "
                                      "'*' learned from every key.")
    key: str
    role: str | None = None
    task: str | None = None
    step: str | None = None
    cluster: str | None = None
    outcomes: float = Field(description="Labelled outcomes, every tier, after decay.")
    tiers: list[MapTier]
    chosen: str = Field(description="The tier a call of the category gets at the configured "
                                    "quality_target (its own score shifts it per call).")
    why: Why = Field(description="evidence: a category with min_outcomes decided (decided_by); "
                                 "prior: the model's scores; pin: a pin or task rule; cold: no "
                                 "evidence yet, the strongest tier (or cold_tier).")
    decided_by: str | None = Field(default=None, description="The category whose evidence "
                                   "decides (this one or a coarser one).")
    pin: str | None = Field(default=None, description="The pin covering the category.")
    explored_share: float | None = Field(description="Share of its calls explored.")
    saving: float = Field(description="1 - the chosen tier's cost of a nominal call (1,000 "
                                      "tokens in, expected_output_tokens out) over the "
                                      "strongest tier's.")


class MapPage(BaseModel):
    """One page of the map, in a stable order (key, then category path)."""

    enabled: bool
    revision: int = Field(default=0, description="Labelled outcomes learned since the last "
                                                 "reset.")
    quality_target: float
    tiers: list[str] = Field(default_factory=list)
    total: int = Field(default=0, description="Categories matching the filters.")
    offset: int = 0
    next_offset: int | None = Field(default=None, description="Where the next page starts "
                                                              "(None: the last page).")
    categories: list[MapCategory] = Field(default_factory=list)


class MapReset(BaseModel):
    """POST /admin/map/reset: the category to forget, named as GET /map names it."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=300, description="key/role:R/task:T, as "
                          "GET /map's `category` ('-/...' for calls without a key).")
