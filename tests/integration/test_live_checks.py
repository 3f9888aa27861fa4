"""Check evidence against a real `tier-router serve` (real encoder, synthetic head, SQLite): a
verifiable call goes direct while nothing is known, tries the cheap tier first once escalations
and /feedback's check results teach the map that its answers pass often and are good when they
pass, and still does after a restart; /verify names the map's category. Check results and labels
are SYNTHETIC (made-up outcomes): this checks the loop end to end, not routing quality."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.api.test_reload import write_config
from tests.integration.service import Server

CHECK = {"reason": "tests_failed", "detail": "2 of 5 tests failed"}


def post(http: httpx.Client, path: str, status: int = 200, **body: Any) -> dict[str, Any]:
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def planned(http: httpx.Client, deadline_s: float = 30.0) -> dict[str, Any]:
    """A verifiable call's decision once the map has rebuilt with what it was taught (a second
    after new outcomes, on the service's own loop)."""
    deadline = time.monotonic() + deadline_s
    while True:
        d = post(http, "/route", prompt="write a function that parses dates", task="code",
                 verifiable=True)
        if d["plan"] == "try_cheap_first" or time.monotonic() > deadline:
            return d
        time.sleep(0.5)


def why(http: httpx.Client, decision: dict[str, Any], server: Server) -> str:
    """What a failed wait saw: the decision, the map's check evidence after a rebuild forced
    by reading it, and the server's warnings."""
    learning = http.get("/admin/learning").json()
    warned = [line for line in server.log.read_text().splitlines()
              if '"level": "WARNING"' in line or '"level": "ERROR"' in line]
    return (f"decision {decision}\nmap revision {learning.get('revision')}, checks "
            f"{learning.get('checks')}\nserver warnings: {warned[-20:]}")


def test_a_verifiable_calls_plan_is_learned_from_checks_and_survives_a_restart(
    model_dir: Path, tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "c.yaml", model_dir, quality_target=0.95,
                          learning={"prior_confidence": None, "min_outcomes": 30},
                          verify={"enabled": True})
    server = Server(config, tmp_path / "server.log").start(ready="/readyz")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            cold = post(http, "/route", prompt="write a function that parses dates",
                        task="code", verifiable=True)
            assert (cold["tier"], cold["plan"]) == ("large", "direct")
            for i in range(60):  # small's tests pass 7 times in 10; large's always
                prompt = f"write a function that parses dates, variant {i}"
                small = post(http, "/route", prompt=prompt, task="code", tier="small")
                if i % 10 < 7:
                    post(http, "/feedback", 201, decision_id=small["decision_id"],
                         success=True, check_passed=True)
                else:
                    up = post(http, "/route", prompt=prompt, task="code",
                              escalate_from=small["decision_id"], escalation=CHECK)
                    post(http, "/feedback", 201, decision_id=up["decision_id"], success=True,
                         check_passed=True)
                large = post(http, "/route", prompt=prompt, task="code", tier="large")
                post(http, "/feedback", 201, decision_id=large["decision_id"], success=True)
            taught = planned(http)
            assert (taught["tier"], taught["plan"]) == ("small", "try_cheap_first"), \
                why(http, taught, server)
            plain = post(http, "/route", prompt="write a function that parses dates",
                         task="code")
            assert "plan" not in plain and plain["detail"].startswith("task code:")
            checked = post(http, "/route", prompt="write a function that parses dates",
                           task="code", tier="small")
            verified = post(http, "/verify", decision_id=checked["decision_id"],
                            logprob_mean=-0.2, checks={"tests": True})
            assert verified["action"] == "accept" and verified["category"] == "-/task:code"
            names = {e["category"] for e in http.get("/admin/learning").json()["top"]}
            assert verified["category"] in names  # the map's own name for it
        assert server.stop()
        restarted = Server(config, tmp_path / "server2.log").start(ready="/readyz")
        try:
            with httpx.Client(base_url=restarted.url, timeout=60) as http:
                again = planned(http, 10.0)
                assert (again["tier"], again["plan"]) == ("small", "try_cheap_first"), \
                    why(http, again, restarted)
        finally:
            restarted.kill()
    finally:
        server.kill()
