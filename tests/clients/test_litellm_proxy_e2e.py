"""End to end through a real LiteLLM proxy (its CLI, the example config of
clients/python/examples/litellm_proxy with LiteLLM's mock responses per deployment) and a real
tier-router: the OpenAI SDK asks the proxy for model `auto`, tier-router resolves it, the
proxy falls back along the decision, and the outcome lands in tier-router's store.

The proxy needs `litellm[proxy]`, which cannot go into the project's venv (its boto3 pins
python-dateutil below 3, a downgrade): point TIER_ROUTER_LITELLM_PROXY at the `litellm` CLI of
a venv that has it: `python3.11 -m venv v && v/bin/pip install 'litellm[proxy]==1.97.0'
'fastapi==0.140.0'` (1.97's proxy imports fastapi's get_flat_dependant, gone after 0.140.0)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.clients.conftest import AGENT, CLIENT_SRC, decision_ids, outcome_row
from tests.integration.service import Server
from tests.ports import free_port

pytestmark = pytest.mark.slow
EXAMPLE = CLIENT_SRC / "examples" / "litellm_proxy"
openai = pytest.importorskip("openai", reason="the client's integrations are not installed")


def proxy_cli() -> str:
    cli = os.environ.get("TIER_ROUTER_LITELLM_PROXY")
    if cli and Path(cli).is_file():
        return cli
    pytest.skip("no LiteLLM proxy: set TIER_ROUTER_LITELLM_PROXY to the `litellm` CLI of a venv "
                "with litellm[proxy] (it cannot share this venv: python-dateutil 4 -> 2.9)")


@pytest.fixture(scope="module")
def proxy(live: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli, work = proxy_cli(), tmp_path_factory.mktemp("litellm-proxy")
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    for deployment in config["model_list"]:
        name = deployment["model_name"]
        deployment["litellm_params"].update(api_key="sk-none", mock_response=(
            "litellm.RateLimitError" if name == "gpt-4.1-nano" else f"answer from {name}"))
    for route in config["general_settings"]["pass_through_endpoints"]:
        route["target"] = f"{live.url}/runs"  # the example's target is a default service's
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(EXAMPLE / "tier_router_callbacks.py", work)
    port, log = free_port(), (work / "proxy.log").open("w")
    env = {**os.environ, "TIER_ROUTER_URL": live.url, "TIER_ROUTER_API_KEY": AGENT,
           "PYTHONPATH": str(CLIENT_SRC),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen([cli, "--config", str(work / "config.yaml"), "--host", "127.0.0.1",
                             "--port", str(port)], cwd=work, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (work / "proxy.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            raise AssertionError("proxy not ready: " + (work / "proxy.log").read_text()[-3000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for_outcome(server: Server, step: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ids = decision_ids(server, step=step)
        if ids:
            try:
                return outcome_row(server, ids[0])
            except AssertionError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"no outcome for step {step}")


def stored_model(server: Server, step: str) -> str:
    import sqlite3
    with sqlite3.connect(server.config.parent / "traces.db") as db:
        return db.execute("SELECT model FROM decisions WHERE step = ?", (step,)).fetchone()[0]


def test_auto_through_the_proxy(live: Server, proxy: str) -> None:
    client = openai.OpenAI(api_key="sk-any", base_url=f"{proxy}/v1", max_retries=0)
    ask = [{"role": "user", "content": "what is two plus two"}]
    answer = client.chat.completions.create(model="auto", messages=ask, extra_body={"metadata": {
        "run_id": "e2e", "role": "planner", "step": "e2e-meta", "tier": "small"}})
    # the routed small model (gpt-4.1-nano) is rate limited: its fallback answered
    assert stored_model(live, "e2e-meta") == "gpt-4.1-nano"
    assert answer.choices[0].message.content == "answer from gemini-2.0-flash-001"
    row = wait_for_outcome(live, "e2e-meta")
    assert row["quality"] is None and row["fallback_used"] == 1
    assert row["model_used"] == "gemini-2.0-flash-001" and row["tokens_in"] > 0
    big = client.chat.completions.create(
        model="auto", user="run_id=e2e;role=prover;step=e2e-user", messages=[
            {"role": "user", "content": "prove the theorem about primes rigorously"}])
    routed = stored_model(live, "e2e-user")
    if routed != "gpt-4.1-nano":
        assert big.choices[0].message.content == f"answer from {routed}"
    row = wait_for_outcome(live, "e2e-user")
    assert row["quality"] is None and row["model_used"] in (routed, "gemini-2.0-flash-001")
    with pytest.raises(openai.UnprocessableEntityError, match="quality_target"):  # the 422
        client.chat.completions.create(model="auto", messages=ask,
                                       extra_body={"metadata": {"quality_target": 1.5}})


def test_the_openai_example_through_the_proxy(live: Server, proxy: str) -> None:
    """The OpenAI SDK example routes with tier-router and calls the proxy's mock deployments."""
    import subprocess
    import sys

    env = {**os.environ, "TIER_ROUTER_URL": live.url, "TIER_ROUTER_API_KEY": AGENT,
           "OPENAI_BASE_URL": f"{proxy}/v1",
           "OPENAI_API_KEY": "sk-any", "PYTHONPATH": str(CLIENT_SRC)}
    done = subprocess.run([sys.executable, str(CLIENT_SRC / "examples" / "openai_sdk.py")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    model, reason, status, *answer = done.stdout.split()
    # the model that answered (the proxy's nano deployment is rate limited: then its fallback)
    assert status == "stored" and model != "gpt-4.1-nano"
    assert " ".join(answer) == f"answer from {model}"


def test_a_run_outcome_through_the_proxys_pass_through_route(live: Server, proxy: str) -> None:
    client = openai.OpenAI(api_key="sk-any", base_url=f"{proxy}/v1", max_retries=0)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}],
                                   extra_body={"metadata": {"run_id": "e2e-run"}})
    posted = httpx.post(f"{proxy}/tier-router/runs/e2e-run/outcome", json={"success": True},
                        headers={"Authorization": "Bearer sk-any"})
    assert posted.status_code == 200, posted.text
    assert posted.json()["outcome"]["api_key"] == "agent"  # the hook's key: the run's own
    shown = httpx.get(f"{live.url}/runs/e2e-run", headers={"X-API-Key": AGENT}).json()
    assert shown["outcome"]["success"] is True
    again = httpx.post(f"{proxy}/tier-router/runs/e2e-run/outcome", json={"success": False},
                       headers={"Authorization": "Bearer sk-any"})
    assert again.status_code == 409  # once per run, as from the client
