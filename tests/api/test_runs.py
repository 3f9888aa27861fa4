"""Runs through the real app: caps (402), run spend on every answer, ledgers (GET /runs),
visibility, expiry, restarts, sticky runs, outcome ownership (403) and retention."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import ApiKeyConfig, AuthConfig, RunsConfig, Settings
from router.guards.auth import hash_key
from router.traces.db import Database
from router.traces.retention import SideConnection
from tests.clocks import SkippingClock
from tests.conftest import FakeEmbedder

EASY, HARD = "say hello", "prove the theorem about primes"


def client_for(settings: Settings) -> TestClient:
    return TestClient(create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder()))


def with_runs(settings: Settings, **runs: Any) -> Settings:
    return settings.model_copy(update={"runs": RunsConfig(**runs)})


def keyed(settings: Settings) -> Settings:
    keys = {"a": ["route", "feedback"], "b": ["route", "feedback"], "ops": ["admin", "feedback"]}
    auth = AuthConfig(keys=[ApiKeyConfig(name=n, sha256=hash_key(f"k-{n}"), scopes=s)
                            for n, s in keys.items()])
    return settings.model_copy(update={"auth": auth})


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": f"k-{name}"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as c:
        yield c


def route(c: TestClient, prompt: str = EASY, headers: dict[str, str] | None = None,
          **body: Any) -> dict[str, Any]:
    r = c.post("/route", json={"prompt": prompt, **body}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_every_answer_of_a_run_carries_its_spend(client: TestClient) -> None:
    first = route(client, run_id="r1")
    second = route(client, HARD, run_id="r1")
    assert first["run_spend_usd"] == pytest.approx(first["estimated_cost_usd"])
    assert second["run_spend_usd"] == pytest.approx(
        first["estimated_cost_usd"] + second["estimated_cost_usd"])
    assert "run_max_cost_usd" not in second  # no cap applies
    assert route(client, run_id="r2")["run_spend_usd"] == pytest.approx(
        first["estimated_cost_usd"])  # another run
    assert "run_spend_usd" not in route(client)  # no run
    dry = route(client, run_id="r1", dry_run=True)  # says the spend, adds nothing
    assert dry["run_spend_usd"] == pytest.approx(second["run_spend_usd"])
    batch = client.post("/route/batch", json={"requests": [
        {"prompt": EASY, "run_id": "r3"}, {"prompt": EASY, "run_id": "r3"}]}).json()
    spends = [d["run_spend_usd"] for d in batch["decisions"]]
    assert spends[1] == pytest.approx(2 * spends[0])


def test_feedback_replaces_the_estimate_with_the_reported_cost(client: TestClient) -> None:
    first = route(client, run_id="r1")
    r = client.post("/feedback", json={"decision_id": first["decision_id"], "success": True,
                                       "cost_usd": 0.25})
    assert r.status_code == 201, r.text
    second = route(client, run_id="r1")
    assert second["run_spend_usd"] == pytest.approx(0.25 + second["estimated_cost_usd"])


def test_a_run_at_its_cap_gets_402_naming_run_spend_and_cap(client: TestClient) -> None:
    cap = 0.0001  # one small call (~0.00016) reaches it
    first = route(client, run_id="loop", max_run_cost_usd=cap)
    assert first["run_max_cost_usd"] == cap and first["run_spend_usd"] > cap
    r = client.post("/route", json={"prompt": EASY, "run_id": "loop", "max_run_cost_usd": cap})
    assert r.status_code == 402, r.text
    body = r.json()
    assert body["error"] == "run cap reached" and body["run_id"] == "loop"
    assert body["run_spend_usd"] == pytest.approx(first["run_spend_usd"])
    assert body["run_max_cost_usd"] == cap and body["cap"] == "the request's max_run_cost_usd"
    assert "run 'loop' has spent" in body["detail"]
    assert route(client, run_id="fresh", max_run_cost_usd=cap)["run_spend_usd"] > 0
    batch = client.post("/route/batch", json={"requests": [
        {"prompt": EASY}, {"prompt": EASY, "run_id": "loop", "max_run_cost_usd": cap}]})
    assert batch.status_code == 402 and batch.json()["run_id"] == "loop"


def test_configured_caps_hold_by_role_and_by_key(settings: Settings) -> None:
    capped = keyed(with_runs(settings, by_role={"planner": 0.0001}, by_key={"b": 0.0002}))
    with client_for(capped) as c:
        route(c, run_id="r", role="planner", headers=key("a"))
        r = c.post("/route", json={"prompt": EASY, "run_id": "r", "role": "planner"},
                   headers=key("a"))
        assert r.status_code == 402 and r.json()["cap"] == "runs.by_role.planner"
        # the request cannot loosen the operator's cap
        r = c.post("/route", json={"prompt": EASY, "run_id": "r", "role": "planner",
                                   "max_run_cost_usd": 100.0}, headers=key("a"))
        assert r.status_code == 402
        # b's run with the same run_id is b's own: b's cap, not a's spend
        assert route(c, run_id="r", headers=key("b"))["run_max_cost_usd"] == 0.0002
        route(c, run_id="r", headers=key("b"))
        r = c.post("/route", json={"prompt": EASY, "run_id": "r"}, headers=key("b"))
        assert r.status_code == 402 and r.json()["cap"] == "runs.by_key.b"


def test_the_ledger_lists_every_step_and_the_most_expensive(client: TestClient) -> None:
    steps = [route(client, p, run_id="r1", step=str(i), role="solver", task=t)
             for i, (p, t) in enumerate([(EASY, "plan"), (HARD, "code"), (EASY, None)])]
    fb = client.post("/feedback", json={"decision_id": steps[2]["decision_id"], "success": True,
                                   "cost_usd": 0.3, "tokens_in": 7, "tokens_out": 9,
                                   "model_used": "gpt-4.1-mini"})
    assert fb.status_code == 201, fb.text
    route(client, run_id="other")
    r = client.get("/runs/r1")
    assert r.status_code == 200, r.text
    ledger = r.json()
    assert [s["decision_id"] for s in ledger["steps"]] == [d["decision_id"] for d in steps]
    assert [s["step"] for s in ledger["steps"]] == ["0", "1", "2"]
    assert [s["task"] for s in ledger["steps"]] == ["plan", "code", None]
    last = ledger["steps"][2]
    assert (last["model"], last["tier"], last["tokens_in"], last["tokens_out"]) == (
        "gpt-4.1-mini", "medium", 7, 9)
    assert (last["cost_reported_usd"], last["cost_estimated_usd"]) == (
        0.3, steps[2]["estimated_cost_usd"])
    assert ledger["steps"][1]["tier"] == steps[1]["tier"]
    assert ledger["steps"][1]["cost_reported_usd"] is None
    assert ledger["most_expensive"]["decision_id"] == steps[2]["decision_id"]
    assert ledger["total_usd"] == pytest.approx(
        0.3 + steps[0]["estimated_cost_usd"] + steps[1]["estimated_cost_usd"])
    assert ledger["reported_usd"] == 0.3 and ledger["calls"] == 3
    assert ledger["api_keys"] == [None]
    listing = client.get("/runs").json()["runs"]
    assert [run["run_id"] for run in listing] == ["other", "r1"]
    assert client.get("/runs/nope").status_code == 404
    moments = [ledger["started_at"], ledger["last_call_at"],
               *(s["created_at"] for s in ledger["steps"]), listing[1]["last_call_at"]]
    for moment in [*moments, ledger["expires_at"]]:  # ISO 8601 in UTC, as elsewhere in the API
        assert isinstance(moment, str) and moment.endswith("Z"), moment
    for moment in moments:
        assert abs(datetime.fromisoformat(moment).timestamp() - time.time()) < 600
    expires = datetime.fromisoformat(ledger["expires_at"]).timestamp()
    assert expires - datetime.fromisoformat(ledger["last_call_at"]).timestamp() == \
        pytest.approx(86400, abs=0.002)
    assert ledger["steps"][0]["created_at"] <= ledger["steps"][2]["created_at"]
    assert listing[1]["last_call_at"] == ledger["last_call_at"]


def test_a_run_is_visible_to_its_key_and_to_admin_only(settings: Settings) -> None:
    with client_for(keyed(settings)) as c:
        route(c, run_id="r1", headers=key("a"))
        assert c.get("/runs/r1", headers=key("a")).json()["api_keys"] == ["a"]
        assert c.get("/runs/r1", headers=key("ops")).status_code == 200  # admin, no route scope
        other = c.get("/runs/r1", headers=key("b"))
        assert other.status_code == 404 and other.json()["error"] == "unknown run"
        assert c.get("/runs", headers=key("b")).json() == {"runs": [], "next_offset": None}
        assert [r["run_id"] for r in c.get("/runs", headers=key("ops")).json()["runs"]] == ["r1"]
        assert c.get("/runs/r1").status_code == 401
    only_feedback = keyed(settings).auth.keys + [ApiKeyConfig(
        name="fb", sha256=hash_key("k-fb"), scopes=["feedback"])]
    with client_for(settings.model_copy(update={"auth": AuthConfig(keys=only_feedback)})) as c:
        r = c.get("/runs/r1", headers=key("fb"))
        assert r.status_code == 403 and "lacks the 'route' or 'admin' scope" in r.json()["detail"]


def test_outcomes_belong_to_the_key_that_made_the_decision(settings: Settings) -> None:
    with client_for(keyed(settings)) as c:
        mine, also_mine = route(c, headers=key("a")), route(c, headers=key("a"))
        body = {"decision_id": mine["decision_id"], "success": True, "cost_usd": 0.01}
        r = c.post("/feedback", json=body, headers=key("b"))
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert "made with another API key" in r.json()["detail"]
        assert "only the key that made it or an admin key" in r.json()["detail"]
        assert c.post("/feedback", json=body, headers=key("a")).status_code == 201
        admin = {"decision_id": also_mine["decision_id"], "success": False}
        assert c.post("/feedback", json=admin, headers=key("ops")).status_code == 201
        trace = {"prompt": "hi", "model": "gpt-4.1", "quality": 1.0, "role": "solver"}
        assert c.post("/feedback", json=trace, headers=key("b")).status_code == 201  # no owner


def idle_for(client: TestClient, seconds: float) -> None:
    """Make the app's runs idle for `seconds` without waiting: the in-memory run state's clock
    moves on, and the calls already stored move back in time."""
    loop = client.app.state.holder.loop
    assert loop.store.flush(10)
    conn = SideConnection(loop.store.db)
    conn.execute([(f"UPDATE decisions SET created_at = created_at - {seconds:f}", ())])
    conn.close()
    if not isinstance(loop.runs.state.clock, SkippingClock):
        loop.runs.state.clock = SkippingClock()  # real time until the first skip
    loop.runs.state.clock.advance(seconds)


def test_a_run_expires_after_its_idle_time(settings: Settings) -> None:
    with client_for(with_runs(settings, expire_after_s=60)) as c:
        first = route(c, run_id="r1", max_run_cost_usd=0.0001)
        idle_for(c, 59)
        assert c.get("/runs/r1").status_code == 200
        idle_for(c, 2)
        gone = c.get("/runs/r1")
        assert gone.status_code == 404 and "runs.expire_after_s" in gone.json()["detail"]
        again = route(c, run_id="r1", max_run_cost_usd=0.0001)  # a new run: the cap is fresh
        assert again["run_spend_usd"] == pytest.approx(again["estimated_cost_usd"])
        assert [s["decision_id"] for s in c.get("/runs/r1").json()["steps"]] == [
            again["decision_id"]]
        assert first["decision_id"] != again["decision_id"]


def test_a_restart_keeps_a_runs_spend_cap_and_model(settings: Settings) -> None:
    sticky = with_runs(settings, sticky="run")
    with client_for(sticky) as c:
        first = route(c, HARD, run_id="r1", max_run_cost_usd=1.0)
    with client_for(sticky) as c:  # the same store, a new process state
        second = route(c, EASY, run_id="r1", max_run_cost_usd=1.0)
        assert second["run_spend_usd"] == pytest.approx(
            first["estimated_cost_usd"] + second["estimated_cost_usd"])
        assert (second["model"], second["reason"]) == (first["model"], "sticky")
        r = c.post("/route", json={"prompt": EASY, "run_id": "r1",
                                   "max_run_cost_usd": second["run_spend_usd"] / 2})
        assert r.status_code == 402


def test_a_sticky_run_stays_on_its_model_and_moves_up_only(client: TestClient) -> None:
    first = route(client, EASY, run_id="s", sticky="run")
    assert first["tier"] == "small"
    up = route(client, HARD, run_id="s", sticky="run")
    assert up["tier"] != "small" and "sticky run: moved up" in up["detail"]
    stay = route(client, EASY, run_id="s", sticky="run")
    assert (stay["model"], stay["reason"]) == (up["model"], "sticky")
    assert "stays on" in stay["detail"] and up["model"] not in stay["fallbacks"]
    forced = route(client, EASY, run_id="s", sticky="run", tier="small")
    assert forced["tier"] == "small" and "left" in forced["detail"]
    assert route(client, EASY, run_id="s", sticky="run")["tier"] == "small"  # stays there now
    assert route(client, EASY, run_id="free")["tier"] == "small"  # not sticky: as routed


def test_the_config_makes_runs_sticky_and_a_request_can_opt_out(settings: Settings) -> None:
    with client_for(with_runs(settings, sticky="run")) as c:
        up = route(c, HARD, run_id="s")
        assert route(c, EASY, run_id="s")["reason"] == "sticky"
        assert route(c, EASY, run_id="s", sticky="none")["tier"] == "small"
        assert route(c, EASY)["tier"] == "small"  # no run: nothing to stick to
        assert up["tier"] != "small"


def test_a_shadow_call_counts_its_own_model_and_is_never_refused(client: TestClient) -> None:
    cap = 0.0001
    first = route(client, run_id="sh", max_run_cost_usd=cap, shadow=True, model="gpt-4.1")
    assert first["followed_cost_usd"] > first["estimated_cost_usd"]  # large, not the pick
    assert first["run_spend_usd"] == pytest.approx(first["followed_cost_usd"])
    again = route(client, run_id="sh", max_run_cost_usd=cap, shadow=True, model="gpt-4.1",
                  sticky="run")  # over the cap, but nobody follows it: no 402, no pin
    assert again["reason"] != "sticky"
    followed = client.post("/route", json={"prompt": EASY, "run_id": "sh",
                                           "max_run_cost_usd": cap})
    assert followed.status_code == 402  # a followed call of the run is held to the cap
    steps = client.get("/runs/sh").json()["steps"]
    assert [(s["shadow"], s["model"], s["tier"]) for s in steps] == [(True, "gpt-4.1", None)] * 2


BAD_RUN_INPUT = [
    ({"max_run_cost_usd": -1}, "max_run_cost_usd"),
    ({"max_run_cost_usd": 0}, "max_run_cost_usd"),
    ({"max_run_cost_usd": True}, "max_run_cost_usd"),
    ({"max_run_cost_usd": "1"}, "max_run_cost_usd"),
    ({"sticky": "always"}, "sticky"),
    ({"sticky": True}, "sticky"),
    ({"max_run_cost_uds": 1.0}, "max_run_cost_uds"),  # a typo of a safety field
    ({"run_id": "x" * 300}, "run_id"),
]


@pytest.mark.parametrize(("extra", "field"), BAD_RUN_INPUT)
def test_bad_run_fields_are_422_naming_the_field(
    client: TestClient, extra: dict[str, Any], field: str
) -> None:
    r = client.post("/route", json={"prompt": EASY, "run_id": "r", **extra})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]]


def test_a_bad_listing_limit_is_422(client: TestClient) -> None:
    for limit in (0, 1001, "many"):
        r = client.get("/runs", params={"limit": limit})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "query.limit"


def test_without_a_store_a_ledger_is_503(settings: Settings) -> None:
    off = settings.model_copy(update={"store": settings.store.model_copy(
        update={"enabled": False})})
    with client_for(off) as c:
        assert route(c, run_id="r1")["run_spend_usd"] > 0  # caps work without a store
        assert c.get("/runs/r1").status_code == 503


def test_the_service_deletes_rows_past_retention_and_logs_it(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with client_for(settings) as c:
        route(c, run_id="old")
    conn = SideConnection(Database.from_url(settings.store.url))
    conn.execute([("UPDATE decisions SET created_at = created_at - 3 * 86400", ())])
    conn.close()
    kept = settings.model_copy(update={"store": settings.store.model_copy(
        update={"retention_days": 2.0})})
    with caplog.at_level(logging.INFO, logger="router.traces.retention"), client_for(kept) as c:
        fresh = route(c, run_id="new")
        deadline = time.monotonic() + 5
        while "retention: deleted" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "retention: deleted 1 decisions and 0 outcomes older than 2 days" in caplog.text
        assert c.get("/runs/new").json()["steps"][0]["decision_id"] == fresh["decision_id"]
        assert c.get("/runs/old").status_code == 404


def test_runs_and_spend_are_paged(client: TestClient) -> None:
    for i in range(5):
        route(client, run_id=f"page-{i}")
    first = client.get("/runs", params={"limit": 2}).json()
    assert [r["run_id"] for r in first["runs"]] == ["page-4", "page-3"]
    assert first["next_offset"] == 2
    rest = client.get("/runs", params={"limit": 10, "offset": first["next_offset"]}).json()
    assert [r["run_id"] for r in rest["runs"]] == ["page-2", "page-1", "page-0"]
    assert rest["next_offset"] is None
    spend = client.get("/spend", params={"by": "run_id", "limit": 4}).json()
    assert len(spend["rows"]) == 4 and spend["next_offset"] == 4
    tail = client.get("/spend", params={"by": "run_id", "limit": 4, "offset": 4}).json()
    assert len(tail["rows"]) == 1 and tail["next_offset"] is None
    assert client.get("/runs", params={"limit": 1001}).status_code == 422


def test_reports_never_wait_for_the_connection_feedback_commits_on(
    client: TestClient,
) -> None:
    """While the durable connection is held (a long feedback commit), /runs and /spend still
    answer: they read on the reports' own connection."""
    route(client, run_id="held")
    store = client.app.state.holder.loop.store  # type: ignore[attr-defined]
    with store._conn_lock:
        started = time.monotonic()
        runs = client.get("/runs")
        spend = client.get("/spend", params={"by": "run_id"})
        waited = time.monotonic() - started
    assert runs.status_code == 200 and [r["run_id"] for r in runs.json()["runs"]] == ["held"]
    assert spend.status_code == 200 and waited < 5


def test_a_runs_outcome_is_its_keys_once_and_shown_in_its_ledger(settings: Settings) -> None:
    with client_for(keyed(settings)) as c:
        route(c, run_id="r1", headers=key("a"))
        assert c.get("/runs/r1", headers=key("a")).json()["outcome"] is None
        foreign = c.post("/runs/r1/outcome", json={"success": True}, headers=key("b"))
        assert foreign.status_code == 404 and foreign.json()["error"] == "unknown run"
        first = c.post("/runs/r1/outcome", json={"success": True, "quality": 0.8},
                       headers=key("a"))
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "recorded"
        same = c.post("/runs/r1/outcome", json={"success": True, "quality": 0.8},
                      headers=key("a"))
        assert same.status_code == 200 and same.json()["status"] == "duplicate"
        other = c.post("/runs/r1/outcome", json={"success": False}, headers=key("a"))
        assert other.status_code == 409 and "already has the outcome" in other.json()["detail"]
        shown = c.get("/runs/r1", headers=key("ops")).json()["outcome"]
        assert (shown["success"], shown["quality"], shown["api_key"]) == (True, 0.8, "a")
        assert c.post("/runs/nope/outcome", json={"success": True},
                      headers=key("a")).status_code == 404
        route(c, run_id="r2", headers=key("a"))
        route(c, run_id="r2", headers=key("a"))
        assert c.post("/runs/r2/outcome", json={"success": False},
                      headers=key("a")).status_code == 200
        route(c, run_id="r3", headers=key("b"))  # no outcome reported
        spend = c.get("/spend", headers=key("ops"))
        assert spend.status_code == 200, spend.text
        runs = spend.json()["runs"]
        assert (runs["runs"], runs["calls"], runs["with_outcome"], runs["successful"]) == (
            3, 4, 2, 1)
        ledger = {r: c.get(f"/runs/{r}", headers=key("ops")).json()["total_usd"]
                  for r in ("r1", "r2", "r3")}
        assert runs["cost_per_run_usd"] == pytest.approx(sum(ledger.values()) / 3)
        assert runs["cost_per_call_usd"] == pytest.approx(sum(ledger.values()) / 4)
        assert runs["cost_per_successful_run_usd"] == pytest.approx(ledger["r1"] + ledger["r2"])


@pytest.mark.parametrize(("body", "field"), [
    ({}, "body"), ({"quality": 1.5}, "quality"), ({"success": "yes"}, "success"),
    ({"success": True, "cost": 1}, "cost")])
def test_a_bad_run_outcome_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str,
) -> None:
    route(client, run_id="r2")
    r = client.post("/runs/r2/outcome", json=body)
    assert r.status_code == 422, r.text
    assert field in r.text
    assert client.get("/runs/r2").json()["outcome"] is None  # nothing was recorded


def test_two_keys_runs_with_one_id_have_their_own_outcomes(settings: Settings) -> None:
    with client_for(keyed(settings)) as c:
        route(c, run_id="same", headers=key("a"))
        route(c, HARD, run_id="same", headers=key("b"))
        a = c.post("/runs/same/outcome", json={"success": True}, headers=key("a"))
        assert a.status_code == 200 and a.json()["status"] == "recorded"
        assert c.get("/runs/same", headers=key("b")).json()["outcome"] is None  # not b's
        b = c.post("/runs/same/outcome", json={"success": False}, headers=key("b"))
        assert b.status_code == 200 and b.json()["status"] == "recorded"  # never blocked by a's
        assert c.get("/runs/same", headers=key("a")).json()["outcome"]["success"] is True
        assert c.get("/runs/same", headers=key("b")).json()["outcome"]["success"] is False
        # an admin sees both keys' calls under the id: which run's outcome is ambiguous
        both = c.post("/runs/same/outcome", json={"success": True}, headers=key("ops"))
        assert both.status_code == 409 and "'a', 'b'" in both.json()["detail"]
        assert c.get("/runs/same", headers=key("ops")).json()["outcome"] is None
        route(c, run_id="a-only", headers=key("a"))
        by_admin = c.post("/runs/a-only/outcome", json={"quality": 0.4}, headers=key("ops"))
        assert by_admin.status_code == 200, by_admin.text
        assert by_admin.json()["outcome"]["api_key"] == "ops"  # who reported it
        mine = c.get("/runs/a-only", headers=key("a")).json()["outcome"]  # the run's key's
        assert (mine["quality"], mine["api_key"]) == (0.4, "ops")
        assert c.post("/runs/a-only/outcome", json={"quality": 0.5},
                      headers=key("a")).status_code == 409  # the admin's report is the run's
        runs = c.get("/spend", headers=key("ops")).json()["runs"]
        assert (runs["runs"], runs["with_outcome"], runs["successful"]) == (3, 3, 1)


def test_spend_groups_runs_by_the_map_revision_of_their_first_call(settings: Settings) -> None:
    with client_for(settings) as c:
        for run in ("cold-1", "cold-2"):
            route(c, run_id=run, task="greet")
            route(c, HARD, run_id=run, task="greet")
        assert c.post("/runs/cold-1/outcome", json={"success": True}).status_code == 200
        assert c.post("/runs/cold-2/outcome", json={"success": False}).status_code == 200
        for i in range(3):  # labelled outcomes: the map's revision moves to 3
            d = route(c, f"hello there number {i}", task="greet")
            assert c.post("/feedback", json={"decision_id": d["decision_id"],
                                             "quality": 1.0}).status_code == 201
        c.app.state.holder.loop.reload_learning()
        first = route(c, run_id="warm", task="greet")
        assert first["router_version"].endswith("+s3")
        assert c.post("/feedback", json={"decision_id": first["decision_id"],
                                         "quality": 1.0}).status_code == 201
        c.app.state.holder.loop.reload_learning()
        later = route(c, run_id="warm", task="greet")  # decided by a newer map
        assert later["router_version"].endswith("+s4")
        assert c.post("/runs/warm/outcome", json={"success": True}).status_code == 200
        runs = c.get("/spend").json()["runs"]
    groups = {(g["revision_from"], g["revision_to"]): g for g in runs["by_revision"]}
    assert list(groups) == [(0, 0), (3, 3)]
    cold, warm = groups[(0, 0)], groups[(3, 3)]
    assert (cold["runs"], cold["calls"], cold["with_outcome"], cold["successful"]) == (2, 4, 2, 1)
    assert (warm["runs"], warm["calls"], warm["successful"]) == (1, 2, 1)
    assert cold["cost_per_successful_run_usd"] == pytest.approx(2 * cold["cost_per_run_usd"])
    assert (runs["runs"], runs["calls"]) == (3, 6)  # the run's revision is its first call's
