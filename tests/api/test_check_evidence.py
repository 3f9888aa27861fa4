"""The learned map's check evidence through the app: escalations for a check's reason, /verify
checks and /feedback's check_passed teach it once per decision, a verifiable call's plan
follows it, and /verify's categories are the map's. Labels and check results are SYNTHETIC
(made-up outcomes on the fake embedder): this checks the plumbing and the rule's direction."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from router.config import Settings, VerifyConfig
from tests.api.test_escalation import client_for, escalate
from tests.api.test_learning import route, shipped, teach


def feedback(c: TestClient, decision: dict[str, Any], status: int = 201, **body: Any
             ) -> dict[str, Any]:
    r = c.post("/feedback", json={"decision_id": decision["decision_id"], **body})
    assert r.status_code == status, r.text
    return r.json()


def checks_of(c: TestClient, category: str) -> dict[str, Any] | None:
    c.app.state.holder.loop.reload_learning()
    state = c.get("/admin/learning").json()
    return next((e for e in state["checks"] if e["category"] == category), None)


def test_a_verifiable_calls_plan_changes_once_escalations_and_feedback_teach_it(
    settings: Settings,
) -> None:
    with client_for(shipped(settings, min_outcomes=30)) as c:
        before = route(c, "write a parser", task="code", verifiable=True)
        assert (before["tier"], before["plan"]) == ("large", "direct")  # cold: no evidence
        for i in range(80):  # small's tests pass 7 times in 10; large always answers well
            small = route(c, f"write parser {i}", task="code", tier="small")
            if i % 10 < 7:
                feedback(c, small, success=True, check_passed=True)
            else:
                up = escalate(c, small["decision_id"])
                feedback(c, up, success=True, check_passed=True)
            feedback(c, route(c, f"write parser {i}", task="code", tier="large"), success=True)
        taught = checks_of(c, "-/task:code")
        assert taught is not None and taught["checks"] == 104  # 80 small, 24 escalated
        assert abs(taught["pass_rate"][0] - 0.7) < 0.05
        after = route(c, "write a parser", task="code", verifiable=True)
        assert (after["tier"], after["plan"]) == ("small", "try_cheap_first")
        assert "verifiable: try 'small' (passes 0.7" in after["detail"]
        plain = route(c, "write a parser", task="code")  # not checked: the map's own pick
        assert "plan" not in plain and "verifiable" not in plain["detail"]


def test_a_check_result_counts_once_per_decision(settings: Settings) -> None:
    with client_for(shipped(settings, min_outcomes=30)) as c:
        passed = route(c, "write a parser", task="code", tier="small")
        feedback(c, passed, success=True, check_passed=True)
        feedback(c, passed, status=200, success=True, check_passed=True)  # a duplicate
        failed = route(c, "write a parser", task="code", tier="small")
        escalate(c, failed["decision_id"])  # tests_failed: a failed check
        late = feedback(c, failed, status=200, success=True, check_passed=True)
        assert late["ignored_fields"] == ["success"]  # the escalation's word stands
        unsure = route(c, "write a parser", task="code", tier="small")
        route(c, "write a parser", escalate_from=unsure["decision_id"],
              escalation={"reason": "low_confidence"})  # no check was run
        told = route(c, "write a parser", task="code", tier="small")
        feedback(c, told, success=False, check_passed=False)
        taught = checks_of(c, "-/task:code")
        assert taught is not None and taught["checks"] == 3
        assert taught["pass_rate"][0] < 0.5


def test_check_passed_must_be_a_boolean(settings: Settings) -> None:
    with client_for(settings) as c:
        d = route(c, "write a parser", task="code")
        r = c.post("/feedback", json={"decision_id": d["decision_id"], "success": True,
                                      "check_passed": "yes"})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "check_passed"


def test_verify_keys_its_thresholds_by_the_maps_categories(settings: Settings) -> None:
    on = shipped(settings, min_outcomes=30).model_copy(
        update={"verify": VerifyConfig(enabled=True, min_outcomes=30)})
    with client_for(on) as c:
        teach(c, 40, "code")
        c.app.state.holder.loop.reload_learning()
        decided = route(c, "write a parser", task="code")
        assert decided["detail"].startswith("task code:")  # the map's category decides
        d = route(c, "write a parser", task="code", tier="small")
        r = c.post("/verify", json={"decision_id": d["decision_id"], "logprob_mean": -0.1,
                                    "checks": {"tests": True}})
        assert r.status_code == 200, r.text
        assert r.json()["category"] == "-/task:code"
        names = {e["category"] for e in c.get("/admin/learning").json()["top"]}
        assert r.json()["category"] in names
        taught = checks_of(c, "-/task:code")  # /verify's check taught the map too
        assert taught is not None and taught["checks"] == 1
