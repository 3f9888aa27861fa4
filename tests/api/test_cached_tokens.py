"""POST /feedback's `cached_tokens_in`: priced at the tier's cached-input price when the service
estimates the cost, and never more than `tokens_in`."""

from __future__ import annotations

import pytest

from router.config import Settings
from tests.api.test_feedback import client_for, route


def test_cached_input_is_priced_at_the_cached_price(settings: Settings) -> None:
    tiers = [t.model_copy(update={"cached_input_price_per_m": t.input_price_per_m / 10})
             for t in settings.tiers]
    settings = settings.model_copy(update={"tiers": tiers})
    with client_for(settings) as client:
        decision = route(client, role="cached", tier="large")
        r = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                           "tokens_in": 1000, "cached_tokens_in": 900,
                                           "tokens_out": 10})
        assert r.status_code == 201, r.text
        [row] = client.get("/spend", params={"by": "role"}).json()["rows"]
    large = settings.tier("large")
    assert row["estimated_usd"] == pytest.approx(large.estimate_cost(1000, 10, 900))
    assert row["estimated_usd"] < large.estimate_cost(1000, 10)


def test_more_cached_than_input_is_422_naming_the_field(settings: Settings) -> None:
    with client_for(settings) as client:
        decision = route(client)
        r = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                           "tokens_in": 10, "cached_tokens_in": 11})
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["field"] == "cached_tokens_in" and "at most tokens_in" in detail["message"]


def test_tiers_show_the_cached_input_price(settings: Settings) -> None:
    tiers = [settings.tiers[0].model_copy(update={"cached_input_price_per_m": 0.025}),
             *settings.tiers[1:]]
    with client_for(settings.model_copy(update={"tiers": tiers})) as client:
        shown = client.get("/tiers").json()
    assert [t["cached_input_price_per_m"] for t in shown] == [0.025, None, None]
