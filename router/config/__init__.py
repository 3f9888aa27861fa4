"""The one validated configuration object (``Settings``) and its sections, loaded once by
``load_settings`` and passed down. Sections live beside it by what they configure: ``parts``
(tiers, rules, encoder, limits, store, learning, promotion), ``guards`` (keys, budgets),
``shared`` (Redis, for several replicas), ``health`` (circuit breaking per model);
``settings`` assembles them and reads the file."""

from router.config.guards import ApiKeyConfig, AuthConfig, BudgetConfig, Scope
from router.config.health import HealthConfig
from router.config.parts import (
    DEFAULT_CAPABILITIES,
    Backend,
    Capability,
    EmbedderConfig,
    FeatureStorage,
    LearningConfig,
    LimitsConfig,
    Pin,
    PromotionConfig,
    PromptStorage,
    RunsConfig,
    StoreConfig,
    TaskRule,
    TierConfig,
)
from router.config.settings import API_KEYS_ENV, Settings, default_config_path, load_settings
from router.config.shared import OnUnavailable, SharedStateConfig
from router.config.verify import VerifyConfig

__all__ = [
    "API_KEYS_ENV", "DEFAULT_CAPABILITIES", "ApiKeyConfig", "AuthConfig", "Backend", "BudgetConfig",
    "Capability", "EmbedderConfig", "FeatureStorage", "LearningConfig", "LimitsConfig",
    "OnUnavailable", "PromotionConfig", "PromptStorage", "RunsConfig", "Scope", "Settings",
    "Pin", "SharedStateConfig", "StoreConfig", "TaskRule", "TierConfig", "default_config_path",
    "load_settings", "HealthConfig", "VerifyConfig",
]
