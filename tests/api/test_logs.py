"""Logs are JSON lines, carry the decision id, and hold prompt text only when storage is full."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings, StoreConfig
from router.serving.logs import configure_logging
from tests.conftest import BrokenEmbedder, FakeEmbedder

SECRET = "zanzibar-quokka-7731"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The serve-time logging set-up, writing to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    yield buffer
    root.handlers[:], level = saved
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def route_once(settings: Settings, embedder, storage: str) -> dict:
    store = StoreConfig(url=settings.store.url, prompt_storage=storage)
    settings = settings.model_copy(update={"store": store})
    app = create_app(settings=settings, embedder_factory=lambda cfg: embedder)
    body = {"messages": [{"role": "system", "content": f"system {SECRET}"},
                         {"role": "user", "content": f"what is two plus two {SECRET}"}],
            "run_id": "run-1", "task": "answer"}
    with TestClient(app) as client:
        r = client.post("/route", json=body)
        assert r.status_code == 200
        client.post("/route", json={"prompt": SECRET, "quality_target": 7})  # a 422
        return r.json()


@pytest.mark.parametrize("storage", ["hash", "none"])
def test_decision_is_logged_with_its_id_and_without_the_prompt(
    settings: Settings, json_log: io.StringIO, storage: str
) -> None:
    decision = route_once(settings, FakeEmbedder(), storage)
    records = lines(json_log)  # every line parses as JSON
    [logged] = [r for r in records if r["msg"] == "decision"]
    assert logged["decision_id"] == decision["decision_id"]
    assert logged.items() >= {"event": "decision", "tier": decision["tier"], "run_id": "run-1",
                              "task": "answer", "level": "INFO",
                              "logger": "router.decisions"}.items()
    assert SECRET not in json_log.getvalue()


def test_a_failing_model_logs_no_prompt_either(settings: Settings, json_log) -> None:
    decision = route_once(settings, BrokenEmbedder(), "hash")
    assert decision["reason"] == "degraded"
    records = lines(json_log)
    assert any(r["msg"] == "prediction failed" and "exc" in r for r in records)
    assert SECRET not in json_log.getvalue()


def test_full_prompt_storage_logs_the_routed_text(settings: Settings, json_log) -> None:
    route_once(settings, FakeEmbedder(), "full")
    [logged] = [r for r in lines(json_log) if r["msg"] == "decision"]
    assert SECRET in logged["routed_text"]
