"""The real service: shipped model, real encoder, uvicorn on a free loopback port, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.service import write_config
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
AGENT_SYSTEM = (
    "You are a senior autonomous operations agent working for a large logistics company. "
    "Follow the company policies, reason step by step, keep a log of every action, never "
    "reveal secrets, prefer tools over guessing, and ask for confirmation before anything "
    "irreversible. "
) * 40  # about 3,000 tokens of scaffolding that every call of this agent repeats
TOOLS = [
    {"type": "function", "function": {
        "name": f"tool_{i}", "description": f"Does operation number {i} on the shipment system.",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"},
                                                        "note": {"type": "string"}}}}}
    for i in range(10)
]



@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    workdir = tmp_path_factory.mktemp("server")
    log = workdir / "server.log"
    # the checkout's router, though it runs elsewhere (an installed one may be another tree's)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    # the shipped config, without exploration: a seeded-by-time draw would make the expected
    # reasons a coin toss (its store, ./traces.db, lands in the temp dir it runs in)
    config = write_config(workdir / "config.yaml", exploration_rate=0.0,
                          model_dir=str(ROOT / "models" / "default"))
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "router.cli.main", "serve", "--port", str(port),
             "--config", str(config)],
            cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"server not ready: {log.read_text()[-2000:]}")
    yield base, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def route(base: str, body: dict) -> dict:
    r = httpx.post(f"{base}/route", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_ready_with_the_shipped_model(server) -> None:
    base, _ = server
    ready = httpx.get(f"{base}/readyz").json()
    meta = json.loads((ROOT / "models/default/metadata.json").read_text())
    assert ready == {"ready": True, "router_version": meta["router_version"]}


def test_agent_shaped_call(server) -> None:
    base, _ = server
    body = {
        "messages": [
            {"role": "system", "content": AGENT_SYSTEM},
            {"role": "user", "content": "Shipment 4411 is late. Find out why and tell the "
                                        "customer when it will arrive."},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "c1", "type": "function",
                "function": {"name": "tool_1", "arguments": "{\"id\": \"4411\"}"}}]},
            {"role": "tool", "tool_call_id": "c1",
             "content": "status: held at customs; documents missing: commercial invoice"},
        ],
        "tools": TOOLS, "task": "synthesize", "run_id": "run-7", "role": "support", "step": "4",
    }
    decision = route(base, body)
    assert decision["reason"] in {"classifier", "context_upgrade"}
    assert list(decision["scores"]) == ["small", "medium", "large"]
    assert decision["estimated_tokens_in"] > 3000


def test_agent_scaffolding_moves_scores_by_little(server) -> None:
    base, _ = server
    prompts = [
        "Write a Python function that merges two sorted lists.",
        "What is the capital of Australia?",
        "Prove that the square root of 2 is irrational.",
        "Summarise the causes of the First World War in three sentences.",
    ]
    for prompt in prompts:
        bare = route(base, {"messages": [{"role": "user", "content": prompt}]})
        wrapped = route(base, {"messages": [{"role": "system", "content": AGENT_SYSTEM},
                                            {"role": "user", "content": prompt}],
                               "tools": TOOLS})
        for tier, score in bare["scores"].items():
            assert abs(score - wrapped["scores"][tier]) < 0.05, (prompt, tier)


def test_bad_input_over_http(server) -> None:
    base, _ = server
    r = httpx.post(f"{base}/route", json={"prompt": "x", "quality_target": 2})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "quality_target"


def test_sighup_reloads(server) -> None:
    base, proc = server
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if 'tier_router_reloads_total{outcome="ok"} 1.0' in httpx.get(f"{base}/metrics").text:
            break
        time.sleep(0.2)
    else:
        pytest.fail("SIGHUP did not reload")
    assert route(base, {"prompt": "hello"})["tier"] in {"small", "medium", "large"}


EVERYDAY_STEPS = {
    "greeting": "hi",
    "reformat": 'Reformat this JSON with two-space indentation: {"id":4411,"status":"late",'
                '"items":[{"sku":"A1","qty":2},{"sku":"B7","qty":1}]}',
    "extraction": "From this email, extract the order number and the delivery date as JSON: "
                  "'Hi, order 88123 was promised for 14 March but has not arrived. Tom'",
}
RESEARCH_PROOF = ("Prove the Riemann hypothesis: show that every non-trivial zero of the zeta "
                  "function has real part 1/2, with a complete rigorous argument.")


def route_tier(base: str, prompt: str) -> str:
    r = httpx.post(f"{base}/route", json={"prompt": prompt}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["tier"]


def test_a_research_level_proof_does_not_get_the_cheapest_tier(server) -> None:
    """Issue 10 item 4, second half. Routing only: no quality is claimed."""
    base, _ = server
    assert route_tier(base, RESEARCH_PROOF) != "small"


@pytest.mark.xfail(strict=True, reason=(
    "issue 10 item 4, not met at the shipped default (relative 0.9, guard 0.2-0.4): the head "
    "rates medium 0.66-0.75 of large on these short prompts and the guard's pooled levels put "
    "medium at 0.82 of large, both under 0.9. Only quality_target 0.8 with guard 0.4-0.6 passes "
    "it, at 0.58 of large's quality on chat (measured leave-one-dataset-out); see MODEL_CARD."))
def test_everyday_agent_steps_route_below_large_at_the_default(server) -> None:
    """Issue 10 item 4: at the shipped default, simple steps are not sent to the dearest tier.
    Strict xfail: the day the shipped model routes them lower, this fails and is promoted."""
    base, _ = server
    tiers = {name: route_tier(base, prompt) for name, prompt in EVERYDAY_STEPS.items()}
    assert all(tier != "large" for tier in tiers.values()), tiers
