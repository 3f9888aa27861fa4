"""GET /spend's off-policy estimate through the real app and trace store: which labelled
decisions it rests on, known answers where the log settles them (a map that is always-strongest;
a map that never leaves the tier served), honesty where it cannot (no evidence of the strongest
tier), shadow mode, the bounds and their 4xx. Prompts and labels are synthetic (the fake
embedder, made-up outcomes): this checks the plumbing and the arithmetic's edges, not what a
map saves on real traffic (bench/off_policy_check.py measures that against known truth)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.config import Settings
from tests.api.test_feedback import client_for, route


def labelled(c: TestClient, n: int, quality: float = 1.0, **body: Any) -> list[dict[str, Any]]:
    """`n` routed calls with a labelled outcome each (cost reported: 0.001 USD a call)."""
    answers = []
    for i in range(n):
        a = route(c, prompt=f"say hello {i % 5}", role="greeter", **body)
        r = c.post("/feedback", json={"decision_id": a["decision_id"], "quality": quality,
                                      "cost_usd": 0.001, "tokens_in": 40, "tokens_out": 10})
        assert r.status_code == 201, r.text
        answers.append(a)
    return answers


def estimate_of(c: TestClient, **params: Any) -> dict[str, Any]:
    r = c.get("/spend", params=params)
    assert r.status_code == 200, r.text
    return r.json()["estimate"]


def test_a_map_that_is_always_strongest_is_estimated_at_exactly_its_quality_and_cost(
    settings: Settings,
) -> None:
    # at a target of 1 the map takes the strongest tier, certainly, and nothing is explored
    strongest = settings.model_copy(update={"quality_target": 1.0, "exploration_rate": 0.3,
                                            "exploration_seed": 2})
    with client_for(strongest) as c:
        answers = labelled(c, 24)
        assert {(a["tier"], a["propensity"]) for a in answers} == {("large", 1.0)}
        forced = route(c, prompt="say hello", tier="small")  # the caller chose: left out
        c.post("/feedback", json={"decision_id": forced["decision_id"], "quality": 0.0})
        unlabelled = route(c, prompt="say hello")  # outcome-only: nothing to estimate from
        c.post("/feedback", json={"decision_id": unlabelled["decision_id"], "tokens_in": 5})
        e = estimate_of(c)
    overall = e["overall"]
    assert (e["mode"], overall["calls"], overall["enough_evidence"]) == ("routed", 24, True)
    assert overall["effective_calls"] == overall["strongest_effective_calls"] == 24.0
    assert overall["overlap"] == 1.0
    for figure in ("quality", "cost"):
        for name in ("ips", "snips", "dr"):
            assert overall[figure][name] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert overall["served_quality"] == 1.0 and overall["served_cost_usd"] == 0.001
    assert e["categories"][0]["calls"] == 24 and e["skipped"] == {}
    assert "1.00 [1.00, 1.00] of always-strongest's quality" in e["summary"]


def test_without_evidence_of_the_strongest_tier_it_says_so_instead_of_a_number(
    settings: Settings,
) -> None:
    # the synthetic model's scores send every greeting to small, certainly (exploration off)
    with client_for(settings) as c:
        answers = labelled(c, 20)
        assert {a["tier"] for a in answers} == {"small"}
        e = estimate_of(c)
    overall = e["overall"]
    assert overall["calls"] == 20 and not overall["enough_evidence"]
    assert overall["strongest_effective_calls"] == 0.0
    assert "not enough evidence" in overall["note"] and e["summary"].startswith("No estimate")
    assert all(overall[f][n]["value"] is None for f in ("quality", "cost")
               for n in ("ips", "snips", "dr"))
    # against what was served (seen whole) the map's own evidence is enough: it keeps small
    assert overall["quality_vs_served"]["value"] == 1.0
    assert overall["cost_vs_served"]["value"] == pytest.approx(1.0)


def test_shadow_decisions_are_estimated_against_the_callers_own_models(
    settings: Settings,
) -> None:
    with client_for(settings) as c:
        answers = labelled(c, 15, model="gpt-4.1-mini", shadow=True)  # medium followed
        assert all(a["shadow"] for a in answers)
        e = estimate_of(c)
    overall = e["overall"]
    assert (e["mode"], overall["calls"]) == ("shadow", 15)
    assert overall["served_quality"] == 1.0
    # the map (small, by the synthetic scores) never agrees with the followed medium: no
    # overlap, so nothing but its own model speaks for it
    assert overall["overlap"] == 0.0 and overall["unsupported"] == 1.0
    assert overall["quality_vs_served"]["value"] is None


def test_the_window_and_the_row_cap_bound_what_is_read(settings: Settings) -> None:
    with client_for(settings) as c:
        labelled(c, 110)
        capped = estimate_of(c, estimate_rows=100, estimate_resamples=0)
        later = estimate_of(c, since=4102444800)  # 2100: nothing yet
        off = c.get("/spend", params={"estimate": "false"}).json()
    assert capped["truncated"] and capped["overall"]["calls"] == 100
    assert capped["resamples"] == 0 and capped["max_rows"] == 100
    assert later["mode"] == "none" and later["overall"]["note"] == "no labelled decisions"
    assert off["estimate"] is None


@pytest.mark.parametrize(("field", "value", "limit"), [
    ("estimate_rows", 99, 100), ("estimate_rows", 100_001, 100_000),
    ("estimate_categories", 101, 100), ("estimate_resamples", 2001, 2000),
    ("estimate_resamples", -1, 0), ("estimate", "perhaps", None),
])
def test_an_estimate_bound_out_of_range_is_a_422_naming_it(
    settings: Settings, field: str, value: Any, limit: Any,
) -> None:
    with client_for(settings) as c:
        r = c.get("/spend", params={field: value})
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["field"] == f"query.{field}"
    if limit is not None:
        assert detail["limit"] == limit


def test_more_bootstrap_work_than_the_bound_is_a_422_naming_the_resamples(
    settings: Settings,
) -> None:
    with client_for(settings) as c:
        r = c.get("/spend", params={"estimate_rows": 100_000, "estimate_resamples": 201})
        fits = c.get("/spend", params={"estimate_rows": 100_000, "estimate_resamples": 200})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["field"] == "estimate_resamples" and detail["limit"] == 200
    assert "20,000,000" in detail["message"] and fits.status_code == 200


def test_no_estimate_with_learning_off(settings: Settings) -> None:
    off = settings.model_copy(update={"learning": settings.learning.model_copy(
        update={"enabled": False})})
    with client_for(off) as c:
        labelled(c, 3)
        assert c.get("/spend").json()["estimate"] is None


def test_the_estimate_reads_a_postgres_store_alike(settings: Settings, postgres: Any) -> None:
    from router.config import StoreConfig

    url = postgres.new_database("api_spend_estimate")
    strongest = settings.model_copy(update={
        "quality_target": 1.0, "store": StoreConfig(url=url, flush_interval_ms=5,
                                                    feature_storage="embedding")})
    with client_for(strongest) as c:
        labelled(c, 12)
        e = estimate_of(c, estimate_resamples=20)
    overall = e["overall"]
    assert (overall["calls"], e["skipped"]) == (12, {})  # embeddings read back from BYTEA
    assert overall["quality"]["dr"] == {"value": 1.0, "low": 1.0, "high": 1.0}
