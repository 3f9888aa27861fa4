"""The one validated configuration object and its loader.

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
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from router.config.guards import AuthConfig, BudgetConfig
from router.config.health import HealthConfig
from router.config.parts import (
    EmbedderConfig,
    LearningConfig,
    LimitsConfig,
    Pin,
    PromotionConfig,
    RunsConfig,
    StoreConfig,
    TaskRule,
    TierConfig,
)
from router.config.prices import fill_prices
from router.config.shared import SharedStateConfig
from router.config.verify import VerifyConfig
from router.errors import ConfigError
from router.schemas import QUALITY_TARGET_DOC

API_KEYS_ENV = "TIER_ROUTER_API_KEYS"
# the longest a budget period can last, in days (a month: 31)
PERIOD_DAYS = {"hour": 1 / 24, "day": 1.0, "week": 7.0, "month": 31.0}


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
    quality_target: float = Field(default=0.95, ge=0.0, le=1.0, description=QUALITY_TARGET_DOC)
    fail_open: bool = True
    shadow: bool = Field(default=False, description="Every call a shadow call unless it says "
                         "otherwise: decide and record, never expect to be followed.")
    safe_tier: str = "large"
    expected_output_tokens: int = Field(default=400, ge=0)
    prices_from: Literal["litellm"] | None = Field(
        default=None, description="'litellm': tiers' unset prices and context windows from "
                                  "LiteLLM's local model map (router/config/prices.py).")
    tiers: list[TierConfig] = Field(min_length=1)
    task_rules: dict[str, TaskRule] = Field(default_factory=dict)
    pins: list[Pin] = Field(default_factory=list, max_length=10_000, description=(
        "Task rules for categories: {key, role, task} (any set, all must match) -> {tier} "
        "or {min_tier}; the first fixed pin that matches wins, else the highest floor."))
    embedder: EmbedderConfig = EmbedderConfig()
    limits: LimitsConfig = LimitsConfig()
    store: StoreConfig = StoreConfig()
    budgets: list[BudgetConfig] = Field(default_factory=list)
    runs: RunsConfig = RunsConfig()
    # On by default: without it no outcome ever says a cheaper tier would have done. With the
    # learned map it is the most a call may be explored; the map aims it where a cheaper tier's
    # quality is unknown and caps its cost (learning.explore_cost).
    exploration_rate: float = Field(default=0.1, ge=0.0, lt=1.0)
    exploration_seed: int | None = None
    drift_window_s: float = Field(default=3600.0, gt=0)
    promotion: PromotionConfig = PromotionConfig()
    learning: LearningConfig = LearningConfig()
    verify: VerifyConfig = VerifyConfig()
    health: HealthConfig = HealthConfig()
    auth: AuthConfig = AuthConfig()
    shared_state: SharedStateConfig | None = None  # None: limits and spend counted per process
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _prices_from(cls, data: Any) -> Any:
        return fill_prices(data) if isinstance(data, dict) else data

    @field_validator("tiers")
    @classmethod
    def _unique_names(cls, tiers: list[TierConfig]) -> list[TierConfig]:
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        return tiers

    @model_validator(mode="after")
    def _references_exist(self) -> Settings:
        self._retention_covers_budgets()
        names = self.tier_names
        if self.safe_tier not in names:
            raise ValueError(f"safe_tier '{self.safe_tier}' is not one of the tiers {names}")
        for task, rule in self.task_rules.items():
            for ref in (rule.min_tier, rule.tier):
                if ref is not None and ref not in names:
                    raise ValueError(
                        f"task rule '{task}' names unknown tier '{ref}'; tiers: {names}"
                    )
        for pin in self.pins:
            for ref in (pin.min_tier, pin.tier):
                if ref is not None and ref not in names:
                    raise ValueError(
                        f"pin '{pin.describe()}' names unknown tier '{ref}'; tiers: {names}")
        cold = self.learning.cold_tier
        if cold is not None and cold not in names:
            raise ValueError(f"learning.cold_tier '{cold}' is not one of the tiers {names}")
        budget_names = [b.name for b in self.budgets]
        if len(set(budget_names)) != len(budget_names):
            raise ValueError(f"budget names must be unique, got {budget_names}")
        key_names = [k.name for k in self.auth.keys]
        for b in self.budgets:
            for name in sorted(b.key_set - set(key_names)):
                raise ValueError(f"budget '{b.name}' names api_key '{name}', which is not "
                                 f"one of the auth keys {key_names}")
        for name in self.runs.by_key:
            if name not in key_names:
                raise ValueError(f"runs.by_key names api_key '{name}', which is not one of the "
                                 f"auth keys {key_names}")
        return self

    def _retention_covers_budgets(self) -> None:
        """Budgets are rebuilt from the store at start: a store that keeps less than a
        budget's period would forget spend that still counts."""
        keep = self.store.retention_days
        if keep is None or not self.budgets:
            return
        longest = max(self.budgets, key=lambda b: PERIOD_DAYS[b.period])
        if keep < PERIOD_DAYS[longest.period]:
            raise ValueError(
                f"store.retention_days ({keep:g}) is shorter than budget '{longest.name}''s "
                f"period ({longest.period}: {PERIOD_DAYS[longest.period]:g} days): keep at "
                f"least {PERIOD_DAYS[longest.period]:g} days, or a restart would rebuild the "
                "budget without the spend the store no longer holds")

    @property
    def all_pins(self) -> list[Pin]:
        """The pins with each task rule as a pin on its task (task rules first)."""
        return [*(Pin(task=task, tier=rule.tier, min_tier=rule.min_tier)
                  for task, rule in self.task_rules.items()), *self.pins]

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
