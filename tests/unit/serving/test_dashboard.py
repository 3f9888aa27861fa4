"""The Grafana dashboard asks only for metrics the service exports.

Every PromQL query of every panel (and of the template variables) is parsed; each metric it
selects must be in a real /metrics scrape of a test app after one routed call and one feedback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import promql_parser
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from router.api.app import create_app
from router.cli.main import main
from router.config import Settings
from tests.conftest import FakeEmbedder

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "1m",
                     "$instance": ".*"}


def dashboard() -> dict[str, Any]:
    return json.loads(files("router.serving").joinpath("grafana_dashboard.json").read_text())


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, and the variables' label_values() metrics."""
    out = [(p["title"], t["expr"]) for p in panels(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else ""
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", text)
        if variable["type"] == "query":
            assert match, f"variable {variable['name']}: {text!r}"
            out.append((f"${variable['name']}", match.group(1)))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (parsed, never guessed from the text)."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    names: set[str] = set()
    _walk(promql_parser.parse(expr), names)
    return names


def _walk(node: Any, names: set[str]) -> None:
    if isinstance(node, promql_parser.VectorSelector):
        names.add(node.name)
        return
    if isinstance(node, promql_parser.MatrixSelector):
        _walk(node.vector_selector, names)
        return
    for child in ("args", "expr", "lhs", "rhs", "param"):
        value = getattr(node, child, None)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not isinstance(item, (str, int, float)):
                _walk(item, names)


@pytest.fixture
def exported(settings: Settings) -> set[str]:
    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    with TestClient(app) as client:
        decision = client.post("/route", json={"prompt": "say hello", "role": "planner"}).json()
        r = client.post("/feedback", json={"decision_id": decision["decision_id"],
                                           "success": True, "cost_usd": 0.0001})
        assert r.status_code == 201, r.text
        text = client.get("/metrics").text
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_query_parses_and_names_an_exported_metric(exported: set[str]) -> None:
    found = queries(dashboard())
    assert len(found) >= 20
    unknown = {}
    for title, expr in found:
        names = metric_names(expr)
        assert names, f"{title}: {expr} selects no metric"
        if names - exported:
            unknown[title] = sorted(names - exported)
    assert unknown == {}


def test_the_walk_finds_every_selector() -> None:
    expr = ('sum(rate(a_total{x="1"}[5m])) / on() group_left sum(b) + '
            'histogram_quantile(0.9, sum by (le) (rate(c_bucket[$__rate_interval]))) - -d')
    assert metric_names(expr) == {"a_total", "b", "c_bucket", "d"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(a_total[5m])")


def test_the_dashboard_shows_what_operators_watch() -> None:
    used = {name for _, expr in queries(dashboard()) for name in metric_names(expr)}
    assert {"tier_router_decisions_total", "tier_router_route_latency_seconds_bucket",
            "tier_router_estimated_cost_usd_total", "tier_router_window_relative_quality",
            "tier_router_quality_target", "tier_router_store_dropped_total"} <= used
    exprs = " ".join(expr for _, expr in queries(dashboard()))
    for grouping in ("by (tier)", "by (reason)", "by (role)", "by (why)"):
        assert grouping in exprs
    ids = [p["id"] for p in panels(dashboard())]
    assert len(ids) == len(set(ids))


def test_the_cli_prints_the_dashboard(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard"]) == 0
    assert json.loads(capsys.readouterr().out) == dashboard()
