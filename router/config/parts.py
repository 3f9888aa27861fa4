"""The configuration's sections: tiers, task rules, the encoder, limits, the store, learning
and promotion. Each is a frozen pydantic model; ``router.config.settings`` assembles them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.config.int8_recipes import DEFAULT_INT8_RECIPE, int8_recipe
from router.errors import ConfigError

Capability = Literal["tools", "json", "vision", "audio", "long_context"]
DEFAULT_CAPABILITIES: tuple[Capability, ...] = ("tools", "json")
Backend = Literal["torch", "onnx", "onnx-int8"]
PromptStorage = Literal["full", "hash", "none"]
FeatureStorage = Literal["embedding", "none"]
CategoryField = Literal["role", "task", "step"]
DEFAULT_CATEGORY_FIELDS: tuple[CategoryField, ...] = ("role", "task")


class Section(BaseModel):
    """A config section: unknown keys are an error (a typo must not pass), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TierConfig(Section):
    """One price/ability class of models, cheapest tier listed first in the config."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    models: list[str] = Field(min_length=1, description="Deployed models, preferred first.")
    # Required unless `prices_from: litellm` fills them (router/config/prices.py).
    input_price_per_m: float = Field(ge=0, description="USD per million input tokens.")
    cached_input_price_per_m: float | None = Field(
        default=None, ge=0, description="USD per million cached input tokens; unset: the "
                                        "input price.")
    output_price_per_m: float = Field(ge=0, description="USD per million output tokens.")
    context_window: int = Field(gt=0, description="Tokens the tier's models can hold.")
    capabilities: list[Capability] = Field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    training_models: list[str] = Field(
        default_factory=list,
        description="Model names in labelled traces that stand for this tier's class.",
    )

    def estimate_cost(self, tokens_in: int, tokens_out: int, cached_tokens_in: int = 0) -> float:
        """USD at list prices; `cached_tokens_in` (part of `tokens_in`, as the OpenAI and
        LiteLLM usage counts them) at the cached-input price."""
        cached = min(cached_tokens_in, tokens_in)
        cached_price = self.cached_input_price_per_m
        cached_price = self.input_price_per_m if cached_price is None else cached_price
        return ((tokens_in - cached) * self.input_price_per_m + cached * cached_price
                + tokens_out * self.output_price_per_m) / 1e6


class TaskRule(Section):
    """What an agent's own task signal forces: a floor tier, or one fixed tier."""

    min_tier: str | None = None
    tier: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TaskRule:
        if (self.min_tier is None) == (self.tier is None):
            raise ValueError("a task rule needs exactly one of 'min_tier' or 'tier'")
        return self


class Pin(TaskRule):
    """A task rule for a category of the learned map: the calls whose API key's name, role
    and task match every one of these that is set get the fixed tier or the floor, whatever
    the map has learned (its evidence is kept)."""

    key: str | None = Field(default=None, max_length=64)
    role: str | None = Field(default=None, max_length=64)
    task: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _names_a_category(self) -> Pin:
        if self.key is None and self.role is None and self.task is None:
            raise ValueError("a pin needs at least one of 'key', 'role' or 'task'")
        return self

    def matches(self, key: str | None, role: str | None, task: str | None) -> bool:
        """Whether a call (or a category) with these signals falls under the pin."""
        return ((self.key is None or self.key == key) and (self.role is None or self.role == role)
                and (self.task is None or self.task == task))

    def describe(self) -> str:
        return " ".join(f"{name} '{value}'" for name, value in
                        (("key", self.key), ("role", self.role), ("task", self.task))
                        if value is not None)


class EmbedderConfig(Section):
    backend: Backend = "onnx-int8"
    threads: int = Field(default=2, ge=1, le=64)
    max_seq_length: int = Field(default=256, ge=16, le=512)
    batch_size: int = Field(default=32, ge=1, le=1024)
    batch_wait_ms: float = Field(default=1.0, ge=0, le=100)
    cache_size: int = Field(default=20_000, ge=0)
    onnx_cache_dir: Path | None = Field(
        default=None, description="Where exported ONNX files are cached; default ~/.cache."
    )
    int8_recipe: str = Field(
        default=DEFAULT_INT8_RECIPE,
        description="onnx-int8 only: which encoder MatMuls stay fp32 "
        "(router/config/int8_recipes.py).",
    )

    @field_validator("int8_recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        try:
            int8_recipe(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return name


class LimitsConfig(Section):
    max_body_bytes: int = Field(default=2_000_000, gt=0)
    max_json_depth: int = Field(
        default=64, ge=2, le=200, description="Deepest nesting of arrays and objects a JSON "
                                              "body may have (400 beyond).")
    max_header_bytes: int = Field(
        default=65_536, ge=1024, le=16 * 1024 * 1024,
        description="Request line and headers together, in bytes (431 beyond; read at start "
                    "by `tier-router serve`).")
    max_messages: int = Field(default=512, gt=0)
    max_content_chars: int = Field(default=1_000_000, gt=0)
    max_tools: int = Field(default=256, gt=0)
    max_batch: int = Field(default=256, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    report_slack: float = Field(
        default=2.0, ge=1.0, le=1000.0,
        description="How far past what a call could cost a /feedback report may go: tokens up "
                    "to the model's context window times this, a cost up to that window at "
                    "the model's dearer price times this; beyond it, 422 and nothing stored.")


class StoreConfig(Section):
    """Where decisions and outcomes go; see router/traces/store.py for what a crash can lose."""

    url: str = Field(default="sqlite:///traces.db", pattern=r"^(sqlite|postgres|postgresql)://")
    prompt_storage: PromptStorage = "hash"
    feature_storage: FeatureStorage = Field(
        default="embedding",
        description="Keep with each decision what the classifier saw (the float16 embedding and "
        "the cheap features), so learning works without the text. Default: 'embedding', or "
        "'none' when prompt_storage is 'none'.",
    )
    queue_size: int = Field(default=10_000, gt=0)
    enabled: bool = True
    batch_size: int = Field(default=500, gt=0, description="Decisions per write transaction.")
    flush_interval_ms: float = Field(
        default=50.0, ge=0, le=10_000, description="Longest wait to fill a batch before writing."
    )
    block_ms: float = Field(
        default=5.0, ge=0, le=1_000, description="Wait for queue room this long, then drop."
    )
    retention_days: float | None = Field(
        default=None, gt=0, le=36_500,
        description="Delete decisions and outcomes older than this (a periodic job, counted in "
        "the log); None keeps everything.",
    )

    @model_validator(mode="before")
    @classmethod
    def _features_follow_prompts(cls, data: object) -> object:
        """Unset feature_storage follows prompt_storage: a store that keeps no trace of the
        prompt keeps no embedding of it either."""
        if isinstance(data, dict) and data.get("feature_storage") is None:
            storage = "none" if data.get("prompt_storage") == "none" else "embedding"
            data = {**data, "feature_storage": storage}
        return data


class RunsConfig(Section):
    """Agent runs (a request's ``run_id``): spend caps, sticky models, how long one lives
    (router/guards/run_spend.py). A cap here is the operator's: a request's ``max_run_cost_usd``
    can tighten it, never loosen it."""

    expire_after_s: float = Field(default=86_400.0, gt=0, le=365 * 86_400,
                                  description="A run without calls for this long is over: "
                                  "its spend, its sticky model and its ledger are gone.")
    max_cost_usd: float | None = Field(default=None, gt=0, description="Cap of every run.")
    by_role: dict[str, float] = Field(default_factory=dict,
                                      description="Cap of a run by the request's `role`.")
    by_key: dict[str, float] = Field(default_factory=dict,
                                     description="Cap of a run by the auth key's name.")
    sticky: Literal["run", "none"] = Field(
        default="none", description="'run': a run's later calls stay on its model unless a "
        "call needs a stronger tier, a budget or the model's health forces a change.")

    @field_validator("by_role", "by_key")
    @classmethod
    def _positive(cls, caps: dict[str, float]) -> dict[str, float]:
        for name, cap in caps.items():
            if not cap > 0:
                raise ValueError(f"the cap of {name!r} must be a positive number of USD. "
                                 f"Got {cap!r} instead.")
        return caps


class LearningConfig(Section):
    """The deployment's learned routing map (router/decision/learned_map.py): per (category,
    tier) quality with uncertainty, learned from labelled outcomes, and the rule that reads it."""

    enabled: bool = True
    category_fields: list[CategoryField] = Field(
        default_factory=lambda: list(DEFAULT_CATEGORY_FIELDS),
        description="Request fields that make categories, coarse to fine; `step` only when "
                    "named (many agents send a step number there, which is no category).")
    cluster_bits: int = Field(default=4, ge=0, le=8, description="Embedding clusters, for "
                              "calls with no signal or a sparse category: the model's own "
                              "(its guard's centroids) when it has them, else 2^bits (0: none).")
    max_categories: int = Field(default=2000, ge=1, le=100_000, description="Live categories "
                                "kept (most evidence first); beyond it the coarser level.")
    min_outcomes: int = Field(default=30, ge=1, description="Outcomes a category needs before "
                              "its own estimate decides.")
    prior_strength: float = Field(default=2.0, gt=0, description="Outcomes the model's "
                                  "(recalibrated) score, or a parent category, is worth (low: "
                                  "out of domain the score can be far off, and a strong prior "
                                  "spends the margin before the cheaper tier's own outcomes "
                                  "arrive).")
    bound: float = Field(default=0.9, ge=0.5, lt=1.0, description="One-sided level of the "
                         "lower bound on a tier's quality relative to the strongest tier's.")
    score_weight: float = Field(default=0.0, ge=0, le=2, description="How far a call's own "
                                "score ratio, relative to its category's mean, shifts the bound "
                                "(0: the category's bound alone; above 0 an unvalidated "
                                "per-call score moves calls across the bar on its noise).")
    prior_confidence: float | None = Field(
        default=None, ge=0, le=1,
        description="Without a category of min_outcomes, the model's scores decide alone "
                    "where its confidence is at least this (0: always); below it, or unset, "
                    "the strongest tier (or cold_tier).")
    cold_tier: str | None = Field(
        default=None, description="Where a call with no known category goes instead of the "
                                  "strongest tier: savings from the first call, at the risk of "
                                  "that tier's unmeasured quality on this traffic.")
    share_across_keys: bool = Field(
        default=False, description="Categories also learn from other keys' outcomes (no key "
                                   "supplies more than half of a shared category's evidence).")
    half_life_days: float = Field(default=30.0, ge=7, le=3650,
                                  description="Evidence loses half its weight in this time.")
    calibration_strength: float = Field(default=30.0, ge=0,
                                        description="Pull of the identity map, in outcomes.")
    max_weight: float = Field(default=20.0, ge=1, description="Clip of 1/propensity.")
    explore_cost: float = Field(default=0.01, ge=0, le=1, description="Most a call's "
                                "exploration may cost in expected quality, relative to the "
                                "strongest tier's.")
    probe_share: float = Field(default=0.02, ge=0, le=0.5, description="Calls of a category "
                               "that moved below the strongest tier that probe it again.")
    drift: float = Field(default=0.05, gt=0, le=1, description="A move of a category's "
                         "relative quality between two rebuilds that the drift watch names.")
    refresh_s: float = Field(default=15.0, gt=0, le=3600,
                             description="Rebuild from the store (replicas converge).")


class PromotionConfig(Section):
    """How `tier-router retrain` holds out logged traffic and `promote` judges a candidate."""

    holdout_fraction: float = Field(default=0.3, gt=0, lt=1)
    min_holdout: int = Field(default=50, ge=1)
    quality_margin: float = Field(default=0.01, ge=0, le=1)
    cost_margin: float = Field(default=0.05, ge=0, description="Relative cost increase allowed.")
