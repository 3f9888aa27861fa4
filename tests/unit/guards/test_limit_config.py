"""The limits' config is refused with the reason: unknown team keys, a non-Redis URL, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import load_settings
from router.errors import ConfigError

TIERS = ("safe_tier: a\ntiers: [{name: a, models: [m], input_price_per_m: 1, "
         "output_price_per_m: 1, context_window: 9}]\n")
KEY = "auth: {keys: [{name: k, sha256: '" + "0" * 64 + "', scopes: [route]%s}]}\n"


@pytest.mark.parametrize(("text", "message"), [
    ("budgets: [{name: t, api_keys: [k, team-b], limit_usd: 1}]\n" + KEY % "",
     "budget 't' names api_key 'team-b', which is not one of the auth keys"),
    ("budgets: [{name: t, roles: [a], api_key: k, limit_usd: 1}]\n" + KEY % "",
     "budget 't' names roles and API keys"),
    (KEY % ", tokens_per_minute: 0", "tokens_per_minute: Input should be greater than 0"),
    ("shared_state: {url: 'http://127.0.0.1:6379'}\n", "shared_state.url: String should match"),
    ("shared_state: {url: 'redis://r', on_unavailable: ignore}\n",
     "shared_state.on_unavailable: Input should be 'local' or 'refuse'"),
    ("shared_state: {url: 'redis://r', retry_s: 0}\n", "shared_state.retry_s"),
])
def test_bad_limits_config_is_refused_with_reason(tmp_path: Path, text: str,
                                                   message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(TIERS + text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_a_fleet_budget_and_a_shared_state_load(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(TIERS + "budgets: [{name: fleet, limit_usd: 100}]\n"
                    "shared_state: {url: 'redis://cache:6379/2'}\n" + KEY % ", rate_per_minute: 5")
    settings = load_settings(path)
    assert settings.budgets[0].subject == "the whole fleet"
    assert settings.budgets[0].applies_to(None, None)
    assert settings.shared_state is not None and settings.shared_state.on_unavailable == "local"
