"""The config file is validated once, with errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import default_config_path, load_settings
from router.errors import ConfigError


def test_shipped_config_is_valid_and_ordered() -> None:
    settings = load_settings(default_config_path())
    assert settings.tier_names == ["small", "medium", "large"]
    prices = [t.input_price_per_m for t in settings.tiers]
    assert prices == sorted(prices)
    assert settings.model_dir.name == "default"
    assert settings.tier_of_training_model()["gpt-4-1106-preview"] == "large"


def test_toml_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('safe_tier = "a"\n[[tiers]]\nname = "a"\nmodels = ["m"]\n'
                    "input_price_per_m = 1\noutput_price_per_m = 2\ncontext_window = 10\n")
    assert load_settings(path).tier_names == ["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers: []", "tiers: List should have at least 1 item"),
        ("quality_target: 2\ntiers: [{name: a, models: [m], input_price_per_m: 1, "
         "output_price_per_m: 1, context_window: 9}]\nsafe_tier: a", "quality_target"),
        ("safe_tier: b\ntiers: [{name: a, models: [m], input_price_per_m: 1, "
         "output_price_per_m: 1, context_window: 9}]", "safe_tier 'b' is not one of the tiers"),
        ("safe_tier: a\ntask_rules: {plan: {min_tier: z}}\ntiers: [{name: a, models: [m], "
         "input_price_per_m: 1, output_price_per_m: 1, context_window: 9}]", "unknown tier 'z'"),
        ("safe_tier: a\nbudgets: [{name: x, api_key: team-a, limit_usd: 1}]\ntiers: [{name: a, "
         "models: [m], input_price_per_m: 1, output_price_per_m: 1, context_window: 9}]",
         "budget 'x' names api_key 'team-a', which is not one of the auth keys"),
        ("safe_tier: a\nruns: {by_key: {team-a: 1}}\ntiers: [{name: a, models: [m], "
         "input_price_per_m: 1, output_price_per_m: 1, context_window: 9}]",
         "runs.by_key names api_key 'team-a', which is not one of the auth keys"),
        ("safe_tier: a\nruns: {by_role: {planner: 0}}\ntiers: [{name: a, models: [m], "
         "input_price_per_m: 1, output_price_per_m: 1, context_window: 9}]",
         "the cap of 'planner' must be a positive number of USD. Got 0"),
        ("safe_tier: a\nruns: {expire_after_s: 0, sticky: always}\ntiers: [{name: a, "
         "models: [m], input_price_per_m: 1, output_price_per_m: 1, context_window: 9}]",
         "runs.expire_after_s: .*runs.sticky"),
        ("safe_tier: a\nstore: {retention_days: -1}\ntiers: [{name: a, models: [m], "
         "input_price_per_m: 1, output_price_per_m: 1, context_window: 9}]",
         "store.retention_days"),
        ("safe_tier: a\nstore: {retention_days: 7}\nbudgets: [{name: m, limit_usd: 5, "
         "period: month}]\ntiers: [{name: a, models: [m], input_price_per_m: 1, "
         "output_price_per_m: 1, context_window: 9}]",
         r"store.retention_days \(7\) is shorter than budget 'm''s period \(month: 31 days\)"),
        ("[not yaml", "not valid YAML"),
        ("- a list", "must hold a mapping"),
        ("surprise: 1\ntiers: []", "surprise"),
    ],
)
def test_bad_config_is_refused_with_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")
