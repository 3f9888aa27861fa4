"""The one validated configuration object: tiers, task rules, the knob, limits, artifact path.

Loaded once (``load_settings``) and passed down; nothing else reads the environment or the file.
Changing which model serves a tier, or its price, is a config edit and never needs retraining:
the classifier learns what a tier *class* can do, the config says who serves it today.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from router.decision.encoders.int8_recipes import DEFAULT_INT8_RECIPE, int8_recipe
from router.errors import ConfigError
from router.schemas import QUALITY_TARGET_DOC

Capability = Literal["tools", "json", "vision", "audio", "long_context"]
DEFAULT_CAPABILITIES: tuple[Capability, ...] = ("tools", "json")
Backend = Literal["torch", "onnx", "onnx-int8"]
PromptStorage = Literal["full", "hash", "none"]
FeatureStorage = Literal["embedding", "none"]
Scope = Literal["route", "feedback", "admin"]
API_KEYS_ENV = "TIER_ROUTER_API_KEYS"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierConfig(_Strict):
    """One price/ability class of models, cheapest tier listed first in the config."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    models: list[str] = Field(min_length=1, description="Deployed models, preferred first.")
    input_price_per_m: float = Field(ge=0, description="USD per million input tokens.")
    output_price_per_m: float = Field(ge=0, description="USD per million output tokens.")
    context_window: int = Field(gt=0, description="Tokens the tier's models can hold.")
    capabilities: list[Capability] = Field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    training_models: list[str] = Field(
        default_factory=list,
        description="Model names in labelled traces that stand for this tier's class.",
    )

    def estimate_cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_price_per_m + tokens_out * self.output_price_per_m) / 1e6


class TaskRule(_Strict):
    """What an agent's own task signal forces: a floor tier, or one fixed tier."""

    min_tier: str | None = None
    tier: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TaskRule:
        if (self.min_tier is None) == (self.tier is None):
            raise ValueError("a task rule needs exactly one of 'min_tier' or 'tier'")
        return self


class EmbedderConfig(_Strict):
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
        "(router/decision/encoders/int8_recipes.py).",
    )

    @field_validator("int8_recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        try:
            int8_recipe(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return name


class LimitsConfig(_Strict):
    max_body_bytes: int = Field(default=2_000_000, gt=0)
    max_messages: int = Field(default=512, gt=0)
    max_content_chars: int = Field(default=1_000_000, gt=0)
    max_tools: int = Field(default=256, gt=0)
    max_batch: int = Field(default=256, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)


class ApiKeyConfig(_Strict):
    """One client key: only its sha256 is stored (``tier-router hash-key`` makes it)."""

    name: str = Field(min_length=1, max_length=64, description="Who holds it; shown in logs.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex sha256 of the key.")
    scopes: list[Scope] = Field(min_length=1)
    rate_per_minute: int | None = Field(
        default=None, gt=0, description="Token bucket: refill per minute, also the burst size."
    )


class AuthConfig(_Strict):
    """No keys: the service is open and `serve` binds to loopback only."""

    keys: list[ApiKeyConfig] = Field(default_factory=list)

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[ApiKeyConfig]) -> list[ApiKeyConfig]:
        for attr in ("name", "sha256"):
            values = [getattr(k, attr) for k in keys]
            if len(set(values)) != len(values):
                raise ValueError(f"API key {attr}s must be unique")
        return keys


class StoreConfig(_Strict):
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

    @model_validator(mode="before")
    @classmethod
    def _features_follow_prompts(cls, data: object) -> object:
        """Unset feature_storage follows prompt_storage: a store that keeps no trace of the
        prompt keeps no embedding of it either."""
        if isinstance(data, dict) and data.get("feature_storage") is None:
            storage = "none" if data.get("prompt_storage") == "none" else "embedding"
            data = {**data, "feature_storage": storage}
        return data


class BudgetConfig(_Strict):
    """A spending limit for one agent role, or one API key, over a calendar period (UTC)."""

    name: str = Field(min_length=1, max_length=64)
    role: str | None = Field(default=None, min_length=1, max_length=256,
                             description="The request's `role` this budget counts.")
    api_key: str | None = Field(default=None, min_length=1, max_length=64,
                                description="The name of the auth key whose calls it counts.")
    limit_usd: float = Field(gt=0)
    period: Literal["hour", "day", "week", "month"] = "day"
    low_fraction: float = Field(default=0.8, gt=0, le=1, description="'Low' from this share on.")
    low_quality_target: float = Field(
        default=0.5, ge=0, le=1,
        description="The quality_target (same meaning, relative to the best tier) used while "
                    "the budget is low.",
    )

    @model_validator(mode="after")
    def _one_subject(self) -> BudgetConfig:
        if (self.role is None) == (self.api_key is None):
            raise ValueError(f"budget '{self.name}' needs exactly one of 'role' or 'api_key'")
        return self

    def applies_to(self, role: str | None, api_key: str | None) -> bool:
        """Does a call made with this role and this key count against the budget?"""
        if self.role is not None:
            return role == self.role
        return api_key == self.api_key


class LearningConfig(_Strict):
    """The online learning state (router/traces/learning.py): recalibration and neighbourhood
    evidence from this deployment's labelled outcomes, applied before the policy."""

    enabled: bool = True
    capacity: int = Field(default=2048, ge=16, le=200_000,
                          description="Newest labelled outcomes kept (bounds memory).")
    neighbours: int = Field(default=32, ge=1, le=1024, description="Per tier, per call.")
    bandwidth: float = Field(default=0.25, gt=0, le=10,
                             description="Kernel exp((cos - 1) / bandwidth).")
    min_similarity: float = Field(default=0.2, ge=-1, lt=1,
                                  description="Cosine below which a neighbour is no evidence.")
    prior_strength: float = Field(default=4.0, gt=0,
                                  description="Evidence worth as much as the model's score.")
    calibration_strength: float = Field(default=30.0, ge=0,
                                        description="Pull of the identity map, in outcomes.")
    max_weight: float = Field(default=20.0, ge=1, description="Clip of 1/propensity.")
    explore_floor: float = Field(default=0.25, ge=0, le=1,
                                 description="Share of exploration_rate kept where evidence "
                                 "is dense.")
    refresh_s: float = Field(default=15.0, gt=0, le=3600,
                             description="Reload from the store (replicas converge).")


class PromotionConfig(_Strict):
    """How `tier-router retrain` holds out logged traffic and `promote` judges a candidate."""

    holdout_fraction: float = Field(default=0.3, gt=0, lt=1)
    min_holdout: int = Field(default=50, ge=1)
    quality_margin: float = Field(default=0.01, ge=0, le=1)
    cost_margin: float = Field(default=0.05, ge=0, description="Relative cost increase allowed.")


class Settings(BaseSettings):
    """Everything a running router needs; one instance per loaded config file."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The file only: no stray PORT, HOST or AUTH variable may change a running router
        (load_settings reads the one variable meant for it, TIER_ROUTER_API_KEYS)."""
        return (init_settings,)

    model_dir: Path = Path("models/default")
    quality_target: float = Field(default=0.9, ge=0.0, le=1.0, description=QUALITY_TARGET_DOC)
    fail_open: bool = True
    safe_tier: str = "large"
    expected_output_tokens: int = Field(default=400, ge=0)
    tiers: list[TierConfig] = Field(min_length=1)
    task_rules: dict[str, TaskRule] = Field(default_factory=dict)
    embedder: EmbedderConfig = EmbedderConfig()
    limits: LimitsConfig = LimitsConfig()
    store: StoreConfig = StoreConfig()
    budgets: list[BudgetConfig] = Field(default_factory=list)
    # On by default: without it no outcome ever says a cheaper tier would have done. The
    # learning state scales it down where evidence is dense (learning.explore_floor).
    exploration_rate: float = Field(default=0.1, ge=0.0, lt=1.0)
    exploration_seed: int | None = None
    drift_window_s: float = Field(default=3600.0, gt=0)
    promotion: PromotionConfig = PromotionConfig()
    learning: LearningConfig = LearningConfig()
    auth: AuthConfig = AuthConfig()
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("tiers")
    @classmethod
    def _unique_names(cls, tiers: list[TierConfig]) -> list[TierConfig]:
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        return tiers

    @model_validator(mode="after")
    def _references_exist(self) -> Settings:
        names = self.tier_names
        if self.safe_tier not in names:
            raise ValueError(f"safe_tier '{self.safe_tier}' is not one of the tiers {names}")
        for task, rule in self.task_rules.items():
            for ref in (rule.min_tier, rule.tier):
                if ref is not None and ref not in names:
                    raise ValueError(
                        f"task rule '{task}' names unknown tier '{ref}'; tiers: {names}"
                    )
        budget_names = [b.name for b in self.budgets]
        if len(set(budget_names)) != len(budget_names):
            raise ValueError(f"budget names must be unique, got {budget_names}")
        key_names = [k.name for k in self.auth.keys]
        for b in self.budgets:
            if b.api_key is not None and b.api_key not in key_names:
                raise ValueError(f"budget '{b.name}' names api_key '{b.api_key}', which is not "
                                 f"one of the auth keys {key_names}")
        return self

    @property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def tier(self, name: str) -> TierConfig:
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)

    def tier_of_model(self, model: str) -> str | None:
        """The tier a deployed (or else a training) model name serves in, if any."""
        for t in self.tiers:
            if model in t.models:
                return t.name
        return self.tier_of_training_model().get(model)

    def tier_of_training_model(self) -> dict[str, str]:
        """Training model name -> tier name, for turning labelled traces into tier labels."""
        return {m: t.name for t in self.tiers for m in t.training_models}


def default_config_path() -> Path:
    return Path(str(resources.files("router") / "default_config.yaml"))


def load_settings(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """Read a YAML or TOML file into a validated Settings; relative paths resolve beside it.

    API keys may also come from the environment (``TIER_ROUTER_API_KEYS``, a JSON list of
    ``auth.keys`` entries), added to the file's, so hashes need not live in a checked-in file.
    This is the only place the environment is read.
    """
    path = Path(path) if path is not None else default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML/TOML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    raw.update(overrides)
    _add_env_keys(raw, os.environ if environ is None else environ)
    try:
        settings = Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(f"config file {path} is invalid: {_short(exc)}") from exc
    return _resolve_paths(settings, path.parent)


def _add_env_keys(raw: dict, environ: Mapping[str, str]) -> None:
    text = environ.get(API_KEYS_ENV, "").strip()
    if not text:
        return
    try:
        keys = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{API_KEYS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(keys, list):
        raise ConfigError(f"{API_KEYS_ENV} must be a JSON list of API key entries")
    auth = raw.setdefault("auth", {}) or {}
    if not isinstance(auth, dict):
        raise ConfigError("config 'auth' must be a mapping")
    auth["keys"] = [*(auth.get("keys") or []), *keys]
    raw["auth"] = auth


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """A relative model_dir is read beside the config file, and only there: loading the model
    then names the full path if it is missing (the service starts degraded and says so)."""
    model_dir = settings.model_dir
    if not model_dir.is_absolute():
        model_dir = (base / model_dir).resolve()
    return settings.model_copy(update={"model_dir": model_dir})


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
