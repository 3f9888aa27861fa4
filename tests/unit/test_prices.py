"""`prices_from: litellm` (router/config/prices.py): unset prices and context windows come from
LiteLLM's packaged model map, numbers in the config win, and a missing LiteLLM or an unknown
model fails the load naming the cause."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from router.config import TierConfig, load_settings
from router.errors import ConfigError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm", reason="prices_from: litellm needs litellm installed")


def write(path: Path, tiers: list[dict], **top: object) -> Path:
    path.write_text(yaml.safe_dump({"prices_from": "litellm", "safe_tier": tiers[-1]["name"],
                                    "tiers": tiers, **top}))
    return path


def per_m(model: str, key: str) -> float:
    return round(litellm.model_cost[model][key] * 1e6, 6)


def test_unset_prices_and_window_come_from_the_map(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "c.yaml", [
        {"name": "small", "models": ["gpt-4.1-nano", "gemini-2.0-flash-001"]},
        {"name": "large", "models": ["gpt-4.1", "claude-3-7-sonnet-20250219"]}]))
    small, large = settings.tiers
    assert small.input_price_per_m == per_m("gpt-4.1-nano", "input_cost_per_token") == 0.1
    assert small.output_price_per_m == per_m("gpt-4.1-nano", "output_cost_per_token")
    assert small.cached_input_price_per_m == per_m("gpt-4.1-nano", "cache_read_input_token_cost")
    # the window every model of the tier can hold: claude's 200k, not gpt-4.1's ~1M
    assert large.context_window == litellm.model_cost["claude-3-7-sonnet-20250219"][
        "max_input_tokens"] == 200_000
    assert large.input_price_per_m == per_m("gpt-4.1", "input_cost_per_token")


def test_a_number_in_the_config_wins(tmp_path: Path) -> None:
    [tier] = load_settings(write(tmp_path / "c.yaml", [
        {"name": "t", "models": ["gpt-4.1"], "input_price_per_m": 9.5, "context_window": 4096}
    ])).tiers
    assert (tier.input_price_per_m, tier.context_window) == (9.5, 4096)
    assert tier.output_price_per_m == per_m("gpt-4.1", "output_cost_per_token")


def test_a_provider_prefixed_map_entry_is_found(tmp_path: Path) -> None:
    """The shipped config's mistral-medium-latest is listed as mistral/mistral-medium-latest."""
    assert "mistral-medium-latest" not in litellm.model_cost
    [tier] = load_settings(write(tmp_path / "c.yaml", [
        {"name": "t", "models": ["mistral-medium-latest"]}])).tiers
    assert tier.input_price_per_m == per_m("mistral/mistral-medium-latest",
                                           "input_cost_per_token")


def test_a_model_the_map_does_not_know_needs_numbers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tier 't'.*input_price_per_m.*my-own-model"):
        load_settings(write(tmp_path / "c.yaml", [{"name": "t", "models": ["my-own-model"]}]))


def test_without_litellm_the_load_fails_naming_it(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # import litellm -> ImportError
    with pytest.raises(ConfigError, match="prices_from: litellm needs the litellm package"):
        load_settings(write(tmp_path / "c.yaml", [{"name": "t", "models": ["gpt-4.1"]}]))


def test_without_prices_from_the_prices_stay_required(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", [{"name": "t", "models": ["gpt-4.1"]}], prices_from=None)
    with pytest.raises(ConfigError, match="input_price_per_m"):
        load_settings(path)


def test_cached_input_tokens_are_priced_as_such() -> None:
    tier = TierConfig(name="t", models=["m"], input_price_per_m=2.0, output_price_per_m=8.0,
                      cached_input_price_per_m=0.5, context_window=10)
    assert tier.estimate_cost(1000, 100, cached_tokens_in=800) == pytest.approx(
        (200 * 2.0 + 800 * 0.5 + 100 * 8.0) / 1e6)
    assert tier.estimate_cost(1000, 100) == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6)
    unset = tier.model_copy(update={"cached_input_price_per_m": None})
    assert unset.estimate_cost(1000, 100, 800) == unset.estimate_cost(1000, 100)
