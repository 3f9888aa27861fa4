"""POST /verify through the real app: off by default; a failed check escalates (the next
decision when the call's body comes along); checked answers teach the thresholds of the learned
map's categories of the call, after which a confident unchecked answer is accepted, in a sparse
category on its parent's threshold. The log-probabilities are SYNTHETIC
(no shared data set carries them): this tests the path, not a threshold's worth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from router.config import Settings, VerifyConfig
from tests.api.test_escalation import client_for, route


@pytest.fixture
def on(settings: Settings) -> Iterator[TestClient]:
    verify = VerifyConfig(enabled=True, min_outcomes=30)
    with client_for(settings.model_copy(update={"verify": verify})) as c:
        yield c


def test_off_by_default_is_a_404_naming_the_switch(settings: Settings) -> None:
    with client_for(settings) as c:
        decision = route(c, tier="small")
        r = c.post("/verify", json={"decision_id": decision["decision_id"], "logprob_mean": -0.1})
        assert r.status_code == 404 and "verify.enabled" in r.json()["detail"]


def test_a_failed_check_escalates_and_the_body_gets_the_next_decision(on: TestClient) -> None:
    first = route(on, tier="small", task="code")
    r = on.post("/verify", json={
        "decision_id": first["decision_id"], "logprob_mean": -0.05,
        "checks": {"tests": False, "lint": True},
        "request": {"prompt": "write a function that adds", "task": "code"}})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["action"] == "escalate" and "tests failed" in answer["detail"]
    assert answer["next"]["tier"] == "medium"
    assert answer["next"]["escalated_from"] == first["decision_id"]
    again = on.post("/route", json={"prompt": "x", "escalate_from": first["decision_id"],
                                    "escalation": {"reason": "other"}})
    assert again.status_code == 409  # /verify's escalation counts: once per decision


def test_unchecked_answers_wait_for_evidence_then_confident_ones_are_accepted(
    on: TestClient,
) -> None:
    cold = route(on, tier="small", task="extract")
    r = on.post("/verify", json={"decision_id": cold["decision_id"], "logprob_mean": -0.01})
    assert r.json()["action"] == "escalate" and r.json()["threshold"] is None
    assert r.json()["next"] is None and "escalate_from" in r.json()["detail"]
    for i in range(40):  # synthetic: confident answers pass their checks, unsure ones fail
        lp = -0.02 * (i % 20) if i < 30 else -2.0 - 0.1 * i
        d = route(on, tier="small", task="extract")
        r = on.post("/verify", json={"decision_id": d["decision_id"], "logprob_mean": lp,
                                     "checks": {"schema": i < 30}})
        assert r.status_code == 200, r.text
    warm = route(on, tier="small", task="extract")
    r = on.post("/verify", json={"decision_id": warm["decision_id"], "logprob_mean": -0.1})
    answer = r.json()
    assert answer["action"] == "accept" and answer["evidence"] == 40
    assert -0.4 <= answer["threshold"] <= 0.0
    unsure = route(on, tier="small", task="extract")
    r = on.post("/verify", json={"decision_id": unsure["decision_id"], "logprob_mean": -2.5})
    assert r.json()["action"] == "escalate"
    assert answer["category"] == "-/task:extract"  # the map's name of the category
    other_task = route(on, tier="small", task="plan")  # sparse: a coarser category decides,
    r = on.post("/verify", json={"decision_id": other_task["decision_id"],  # the map's next:
                                 "logprob_mean": -0.1})  # the prompt's embedding cluster
    assert r.json()["category"].startswith("-/cluster:") and r.json()["action"] == "accept"


def test_bad_input_is_422_naming_the_field(on: TestClient) -> None:
    d = route(on, tier="small")
    r = on.post("/verify", json={"decision_id": d["decision_id"], "logprob_mean": 0.5})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "logprob_mean"
    r = on.post("/verify", json={"decision_id": "f" * 32, "logprob_mean": -1.0})
    assert r.status_code == 404
