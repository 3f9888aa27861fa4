"""A provider outage replayed through /feedback errors against a real server (bench/outage.py,
shortened): decisions move off the failing model within `min_calls` failures, come back after
recovery, move up when a whole tier is down (503 when the tier is forced), and latency-sensitive
calls get the faster model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import bench_module
from tests.integration.service import SHIPPED_MODEL

outage = bench_module("outage")
MIN_CALLS, COOLDOWN_S = 4, 1.5


def test_decisions_move_off_a_failing_model_and_come_back(tmp_path: Path) -> None:
    if not (SHIPPED_MODEL / "metadata.json").is_file():
        pytest.skip(f"the shipped model is not in {SHIPPED_MODEL} (tier-router train)")
    out = tmp_path / "outage.json"
    status = outage.main(["--min-calls", str(MIN_CALLS), "--cooldown", str(COOLDOWN_S),
                          "--outage", "3", "--agents", "4", "--out", str(out)])
    result = json.loads(out.read_text())
    figures = result["figures"]
    assert figures["failures_before_moving_off"] == MIN_CALLS  # a clean history before it
    assert figures["outage_decisions_on_failing_model_after_open"] < (
        figures["outage_decisions_after_open"] / 10)  # probes only
    assert figures["state_after_recovery"] == "closed"
    assert figures["seconds_from_recovery_to_first_decision_back"] <= COOLDOWN_S + 5
    assert figures["share_back_on_recovered_model"] == 1.0
    assert figures["tier_down_failures_before_moving_up"] == 2 * MIN_CALLS
    assert figures["forced_down_tier"] == {"status": 503, "tier": "small"}
    assert all(result["checks"].values()) and status == 0, result["checks"]


@pytest.mark.slow
def test_two_replicas_on_one_redis_move_off_together(tmp_path: Path) -> None:
    """Model health in Redis: two replicas, called in turn, stop sending the failing model any
    call after `min_calls` failures in total (per process: each after its own)."""
    if not (SHIPPED_MODEL / "metadata.json").is_file():
        pytest.skip(f"the shipped model is not in {SHIPPED_MODEL} (tier-router train)")
    from tests import redis_server

    why = redis_server.why_unavailable()
    if why is not None:
        pytest.skip(why)
    out = tmp_path / "outage.json"
    outage.main(["--min-calls", str(MIN_CALLS), "--cooldown", str(COOLDOWN_S), "--outage", "2",
                 "--agents", "0", "--replicas", "--out", str(out)])
    figures = json.loads(out.read_text())["figures"]
    assert figures["replicas_shared"]["on_failing_model"] <= MIN_CALLS + 1
    assert figures["replicas_local"]["on_failing_model"] == 2 * MIN_CALLS
