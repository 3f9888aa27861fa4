"""Every counter an alert can watch has its series at 0 from start-up; spend by role counts.

The app is the real one (TestClient, fake embedder); /metrics is scraped before any request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import router.traces.store as store_module
from router.api.app import create_app
from router.api.errors import ERRORS, OTHER_KINDS
from router.config import BudgetConfig, Settings
from router.serving.prometheus import DROP_REASONS, MAX_ROLES, OTHER_ROLES, REASONS
from tests.conftest import FakeEmbedder


def samples(client: TestClient) -> dict[tuple[str, frozenset], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped[(name, frozenset(labels.items()))]


@pytest.fixture
def budgeted(settings: Settings) -> Settings:
    return settings.model_copy(update={"budgets": [
        BudgetConfig(name="planner-daily", role="planner", limit_usd=5, period="day")]})


@pytest.fixture
def client(budgeted: Settings) -> Iterator[TestClient]:
    app = create_app(settings=budgeted, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as c:
        yield c


def test_alertable_series_are_at_zero_right_after_start(client, budgeted) -> None:
    scraped = samples(client)  # the first request of this app
    for why in ("queue_full", "closed"):
        assert value(scraped, "tier_router_store_dropped_total", why=why) == 0
    for tier in budgeted.tier_names:
        for reason in REASONS:
            assert value(scraped, "tier_router_decisions_total", tier=tier, reason=reason) == 0
    for status in ("stored", "duplicate"):
        assert value(scraped, "tier_router_feedback_total", status=status) == 0
    kinds = {spec.kind for spec in ERRORS.values()} | set(OTHER_KINDS)
    assert {"validation", "limit", "unauthorized", "rate_limited", "timeout"} <= kinds
    for kind in kinds:
        assert value(scraped, "tier_router_errors_total", kind=kind) == 0
    for outcome in ("ok", "refused"):
        assert value(scraped, "tier_router_reloads_total", outcome=outcome) == 0
    for role in ("planner", "none"):  # the budgets' roles, and calls without one
        assert value(scraped, "tier_router_estimated_cost_usd_total", role=role) == 0
    assert value(scraped, "tier_router_degraded_total") == 0
    assert value(scraped, "tier_router_store_write_errors_total") == 0


def test_zero_series_keep_their_counts_and_follow_a_reload(client, budgeted) -> None:
    client.post("/route", json={"prompt": "say hello", "tier": "small"})
    client.post("/route", json={"prompt": "say hello", "quality_target": 7})  # a 422
    client.app.state.holder.reload()
    scraped = samples(client)
    assert value(scraped, "tier_router_decisions_total", tier="small", reason="forced") == 1
    assert value(scraped, "tier_router_errors_total", kind="validation") == 1
    assert value(scraped, "tier_router_reloads_total", outcome="ok") == 1
    assert value(scraped, "tier_router_reloads_total", outcome="refused") == 0


def test_spend_by_role_counts_estimates_but_not_dry_runs(client) -> None:
    first = client.post("/route", json={"prompt": "say hello", "role": "planner"}).json()
    client.post("/route", json={"prompt": "say hello", "role": "planner", "dry_run": True})
    second = client.post("/route", json={"prompt": "list three fruits"}).json()
    scraped = samples(client)
    assert value(scraped, "tier_router_estimated_cost_usd_total", role="planner") == \
        pytest.approx(first["estimated_cost_usd"])
    assert value(scraped, "tier_router_estimated_cost_usd_total", role="none") == \
        pytest.approx(second["estimated_cost_usd"])


def test_role_labels_stay_bounded(client) -> None:
    for i in range(MAX_ROLES + 5):
        client.post("/route/batch", json={"requests": [{"prompt": "hi", "role": f"r{i}"}]})
    roles = {dict(labels)["role"] for name, labels in samples(client)
             if name == "tier_router_estimated_cost_usd_total"}
    assert len(roles) == MAX_ROLES + 1 and OTHER_ROLES in roles


def test_drop_reasons_are_the_ones_the_store_counts() -> None:
    source = Path(store_module.__file__).read_text()
    assert set(re.findall(r'_count_drop\("(\w+)"\)', source)) == set(DROP_REASONS)
