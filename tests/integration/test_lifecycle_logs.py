"""A real start, two SIGHUP reloads and a SIGTERM: the log tells the story in JSON lines.

The server (`tier-router serve`, the shipped model; with `-m slow` also a cold start, an empty
ONNX cache so the encoder is exported and quantised) writes its whole stderr to a file. Every
line of it must be a JSON object: library loggers included (onnxruntime's quantiser logs on
the root logger), no tqdm bar. One line each says it started, loaded the model, accepted a
reload, refused one (and why), and shut down. /metrics, scraped right after start, already has
the series alerts watch, at 0.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.service import ROOT, Server, write_config


def events(log: Path) -> list[dict]:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line in the log: {line[:200]!r}")
    return parsed


def wait_for(log: Path, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(log) if predicate(e)]
        if found:
            return found[-1]
        time.sleep(0.2)
    pytest.fail(f"no such log line within {timeout} s: {log.read_text()[-3000:]}")


def start(work: Path, onnx_cache: Path | None) -> tuple[Server, Path]:
    embedder = yaml.safe_load((ROOT / "router" / "default_config.yaml").read_text())["embedder"]
    if onnx_cache is not None:
        embedder["onnx_cache_dir"] = str(onnx_cache)
    config = write_config(work / "config.yaml",
                          store={"url": f"sqlite:///{work / 'traces.db'}"},
                          model_dir=str(ROOT / "models" / "default"), embedder=embedder)
    return Server(config, work / "server.log").start(ready="/readyz"), config


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """The ONNX cache `serve` uses by default (made once, like the other live tests)."""
    server, config = start(tmp_path_factory.mktemp("start"), None)
    try:
        yield server, config
    finally:
        server.kill()


def assert_json_only(log: Path) -> list[dict]:
    records = events(log)  # every line, start to end, is JSON
    assert not [e for e in records if e["logger"] == "root"], "library lines named after it"
    assert not [e for e in records if e["logger"].startswith(("onnxruntime", "transformers",
                                                                "sentence_transformers"))
                and e["level"] in ("DEBUG", "INFO")]
    assert "it/s" not in log.read_text()  # no tqdm bar (stderr is a file, not a terminal)
    return records


@pytest.mark.slow
def test_a_cold_start_logs_only_json(tmp_path: Path) -> None:
    """An empty ONNX cache: the encoder is exported and quantised, as on a first start
    (where onnxruntime logged 32 lines under `root` and transformers drew a tqdm bar)."""
    server, _ = start(tmp_path, tmp_path / "onnx")
    try:
        assert list((tmp_path / "onnx").glob("*.onnx"))  # it was really a cold start
        assert server.stop()
    finally:
        server.kill()
    records = assert_json_only(server.log)
    assert [e for e in records if e.get("event") == "model_load" and e["outcome"] == "ok"]


def test_metrics_have_zero_series_right_after_start(warm) -> None:
    server, _ = warm
    text = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'tier_router_store_dropped_total{why="queue_full"} 0.0' in text
    assert 'tier_router_decisions_total{reason="classifier",tier="small"} 0.0' in text
    assert 'tier_router_feedback_total{status="stored"} 0.0' in text
    assert 'tier_router_errors_total{kind="validation"} 0.0' in text


def test_start_reloads_and_shutdown_each_leave_one_json_line(warm) -> None:
    server, config = warm
    assert server.proc is not None
    log = server.log
    [start] = [e for e in events(log) if e.get("event") == "start"]
    assert start["level"] == "INFO" and start["port"] == server.port and start["version"]
    [loaded] = [e for e in events(log) if e.get("event") == "model_load"]
    assert loaded["outcome"] == "ok" and loaded["router_version"] == "default-tqr-guarded-seed0"
    assert loaded["embedder_reused"] is False

    server.proc.send_signal(signal.SIGHUP)  # the same config: accepted
    accepted = wait_for(log, lambda e: e.get("event") == "reload")
    assert accepted["outcome"] == "ok" and accepted["trigger"] == "sighup"

    good = config.read_text()
    config.write_text(good + "quality_target: 7\n")
    server.proc.send_signal(signal.SIGHUP)  # a broken config: refused, and why
    refused = wait_for(log, lambda e: e.get("event") == "reload" and e["outcome"] != "ok")
    assert refused["outcome"] == "refused" and refused["level"] == "ERROR"
    assert "quality_target" in refused["reason"]
    config.write_text(good)
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200  # the old one serves

    assert server.stop()
    records = assert_json_only(log)
    assert [e for e in records if e.get("event") == "shutdown"]
    assert [e.get("event") for e in records].count("sighup") == 2
