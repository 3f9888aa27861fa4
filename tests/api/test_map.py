"""GET /map and POST /admin/map/reset through the app: each category's evidence, choice and
saving; pins shown and obeyed; one category forgotten; a map of 10,000 categories paged.

Labels are synthetic (the fake embedder and made-up outcomes): this checks what the map shows
and how it is edited, not routing quality.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Pin, Settings
from router.decision.learned_map import COLUMNS, TOTAL, W2, WY, N, W, Y
from router.traces.evidence import CATEGORY_RESET_PREFIX, EvidenceStore
from tests.api.test_feedback import client_for
from tests.api.test_learning import route, shipped, teach
from tests.api.test_reload import write_config
from tests.conftest import LOOPBACK, FakeEmbedder


def page(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/map", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def learned(client: TestClient) -> None:
    """Teach greetings (every tier good) and sums (only large good), then rebuild."""
    teach(client, 60, "greet")
    teach(client, 60, "solve", {"small": 0.0, "medium": 0.2, "large": 1.0})
    client.app.state.holder.loop.reload_learning()  # type: ignore[attr-defined]


def test_the_map_shows_each_categorys_evidence_choice_and_saving(settings: Settings) -> None:
    """At a target of 0.85: 60 synthetic outcomes a tier put small's bound near 0.89."""
    at = shipped(settings, min_outcomes=30).model_copy(update={"quality_target": 0.85})
    with client_for(at) as c:
        empty = page(c)
        assert empty["enabled"] and empty["total"] == 0 and empty["categories"] == []
        learned(c)
        whole = page(c)
        names = [r["category"] for r in whole["categories"]]
        assert names[0] == "-" and names[-2:] == ["-/task:greet", "-/task:solve"]
        clusters = whole["categories"][1:-2]  # the fake embedder's calls fall in a few
        assert clusters and all(r["cluster"] and r["tiers"][0]["calls"] is None
                                for r in clusters)
        assert whole["categories"][0]["tiers"][0]["calls"] == 120  # the root counts them all
        assert whole["revision"] == 360 and whole["quality_target"] == 0.85
        greet = page(c, task="greet")["categories"][0]
        assert (greet["chosen"], greet["why"], greet["decided_by"]) == (
            "small", "evidence", "-/task:greet")
        small = greet["tiers"][0]
        assert (small["tier"], small["calls"], small["explored"], small["outcomes"]) == (
            "small", 60, 0, 60)
        assert small["ratio_low"] <= small["ratio"] <= small["ratio_high"]
        assert small["ratio_low"] >= 0.85 and greet["explored_share"] == 0.0
        assert 0.9 < greet["saving"] < 1.0  # small against large, on the shipped prices
        solve = page(c, task="solve")["categories"][0]
        assert (solve["chosen"], solve["why"], solve["saving"]) == ("large", "evidence", 0.0)
        assert solve["tiers"][0]["ratio_high"] < 0.5
        large = [r["category"] for r in page(c, tier="large")["categories"]]
        assert "-/task:solve" in large and "-/task:greet" not in large
        assert page(c, key="other")["total"] == 0
        detail = route(c, "hello there", task="greet")["detail"]
        assert detail.startswith("task greet: small 0.9") and "over 180 outcomes" in detail


def test_paging_and_bad_filters_say_which_field(settings: Settings) -> None:
    with client_for(shipped(settings, min_outcomes=30, cluster_bits=0)) as c:
        learned(c)
        first = page(c, limit=2)
        assert len(first["categories"]) == 2 and first["next_offset"] == 2
        last = page(c, limit=2, offset=2)
        assert len(last["categories"]) == 1 and last["next_offset"] is None
        bad = c.get("/map", params={"tier": "huge"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "tier"
        assert "huge" in bad.json()["detail"][0]["message"]
        assert c.get("/map", params={"limit": 0}).status_code == 422
        assert c.get("/map", params={"task": "x" * 65}).status_code == 422


def test_a_pinned_category_shows_its_pin_and_calls_obey_it(settings: Settings) -> None:
    pinned = shipped(settings, min_outcomes=30, cluster_bits=0).model_copy(
        update={"pins": [Pin(task="greet", min_tier="medium"), Pin(task="solve", tier="small")],
                "quality_target": 0.85})
    with client_for(pinned) as c:
        learned(c)
        greet = page(c, task="greet")["categories"][0]
        assert (greet["chosen"], greet["why"], greet["pin"]) == ("medium", "pin", "task 'greet'")
        assert greet["tiers"][0]["ratio_low"] >= 0.85  # the evidence stays, the pin decides
        solve = page(c, task="solve")["categories"][0]
        assert (solve["chosen"], solve["why"]) == ("small", "pin")
        call = route(c, "hello there", task="greet")
        assert (call["tier"], call["reason"]) == ("medium", "task_rule")
        assert call["detail"] == "task 'greet' maps to at least 'medium'"


def test_forgetting_one_category_keeps_the_others_and_is_recorded(settings: Settings) -> None:
    with client_for(shipped(settings, min_outcomes=30, cluster_bits=0)) as c:
        learned(c)
        r = c.post("/admin/map/reset", json={"category": "-/task:greet"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "forgotten"
        assert [x["category"] for x in page(c)["categories"]] == ["-", "-/task:solve"]
        greet = route(c, "hello there", task="greet")  # decided by the key's whole traffic now
        assert greet["detail"].startswith("all calls")
        store = c.app.state.holder.loop.store  # type: ignore[attr-defined]
        rows = store.query("SELECT key FROM store_meta WHERE key = ?",
                           (CATEGORY_RESET_PREFIX + "-/task:greet",))
        assert len(rows) == 1
        again = c.post("/admin/map/reset", json={"category": "-/task:greet"})
        assert again.status_code == 422 and again.json()["detail"][0]["field"] == "category"
        extra = c.post("/admin/map/reset", json={"category": "-/task:solve", "all": True})
        assert extra.status_code == 422
        assert page(c, task="solve")["total"] == 1  # a refused reset lost nothing


def test_a_map_of_ten_thousand_categories_is_paged_in_a_stable_order(
    settings: Settings,
) -> None:
    """10,000 task names' evidence written to the store directly (teaching each through
    /feedback would take minutes), then read through GET /map page by page."""
    wide = shipped(settings, min_outcomes=30, max_categories=20_000, cluster_bits=0)
    with client_for(wide) as c:
        loop = c.app.state.holder.loop  # type: ignore[attr-defined]
        evidence = EvidenceStore(loop.store, wide.learning)
        now = time.time()
        rows = []
        for i in range(10_000):
            for path in ("", f"task:t{i:05d}"):
                if path or i == 0:
                    small = 0.55 if not path else 1.0 if i % 2 else 0.1
                    for tier, q in (("small", small), ("large", 1.0)):
                        values = [0.0] * len(COLUMNS)
                        n = 200.0 if path else 2e6
                        values[W], values[WY], values[W2] = n, n * q, n
                        values[N], values[Y], values[TOTAL] = n, n * q, n
                        rows.append(("", path, tier, tuple(values)))
        evidence.add(rows, now)
        loop.reload_learning()
        seen: list[str] = []
        offset: int | None = 0
        started = time.perf_counter()
        while offset is not None:
            body = page(c, limit=1000, offset=offset)
            seen += [r["category"] for r in body["categories"]]
            offset = body["next_offset"]
        elapsed = time.perf_counter() - started
        assert len(seen) == len(set(seen)) == 10_001 and seen == sorted(seen)
        print(f"paged 10,001 categories in {elapsed:.2f} s")
        assert elapsed < 60, f"paging 10,001 categories took {elapsed:.1f} s"
        easy = page(c, task="t00001")["categories"][0]
        hard = page(c, task="t00002")["categories"][0]
        assert (easy["chosen"], hard["chosen"]) == ("small", "large")
        assert page(c, tier="small", limit=1)["total"] == 5000


def test_the_map_metrics_count_categories_by_tier_and_why_and_estimate_the_saving(
    settings: Settings,
) -> None:
    at = shipped(settings, min_outcomes=30, cluster_bits=0).model_copy(
        update={"quality_target": 0.85})
    with client_for(at) as c:
        learned(c)
        text = c.get("/metrics").text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("tier_router_map_")}
    assert values['tier_router_map_categories{tier="small",why="evidence"}'] == 1  # greet
    assert values['tier_router_map_categories{tier="large",why="evidence"}'] == 2  # root, solve
    assert len([k for k in values if k.startswith("tier_router_map_categories")]) == 3 * 4
    # greet saves small against large, solve nothing; both have 180 outcomes
    assert 0.45 < values["tier_router_map_saving"] < 0.5
    assert values["tier_router_map_evidence_share"] == 1.0


def test_a_pin_added_by_reload_keeps_what_was_learned(model_dir: Path, tmp_path: Path) -> None:
    learning = {"min_outcomes": 30, "cluster_bits": 0, "prior_confidence": None}
    config = write_config(tmp_path / "c.yaml", model_dir, quality_target=0.85,
                          learning=learning)
    with TestClient(create_app(config, embedder_factory=lambda cfg: FakeEmbedder()),
                    client=LOOPBACK) as c:
        learned(c)
        before = page(c, task="greet")
        assert before["categories"][0]["why"] == "evidence"
        raw = yaml.safe_load(config.read_text())
        raw["pins"] = [{"task": "greet", "tier": "large"}]
        config.write_text(yaml.safe_dump(raw))
        assert c.post("/admin/reload", json={}).status_code == 200
        after = page(c, task="greet")
        assert after["revision"] == before["revision"] == 360
        row = after["categories"][0]
        assert (row["chosen"], row["why"], row["pin"]) == ("large", "pin", "task 'greet'")
        assert row["tiers"] == before["categories"][0]["tiers"]  # nothing relearned or lost
        assert route(c, "hello there", task="greet")["tier"] == "large"
