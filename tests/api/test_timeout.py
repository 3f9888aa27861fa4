"""limits.request_timeout_s: a slow request answers 408 naming the limit; its work runs on."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import LimitsConfig, Settings
from tests.conftest import JSON, LOOPBACK, FakeEmbedder


class Late:
    """A decision recorder that keeps the tier of every decision it sees."""

    def __init__(self, tiers: list[str]) -> None:
        self.tiers = tiers

    def record(self, request: Any, view: Any, decision: Any, seen: Any = None) -> None:
        self.tiers.append(decision.tier)


class SlowEmbedder(FakeEmbedder):
    """Holds an encode whose text asks for it until the test releases it (at most `hold_s`),
    so one test can mix slow and fast calls without racing a fixed delay."""

    def __init__(self, hold_s: float) -> None:
        super().__init__()
        self.hold_s = hold_s
        self.release = threading.Event()
        self.finished = threading.Event()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if any("slowly" in t for t in texts):
            self.release.wait(self.hold_s)
            self.finished.set()
        return super().encode(texts)


def test_slow_request_is_408_naming_the_limit_and_fast_ones_still_pass(
    settings: Settings,
) -> None:
    embedder = SlowEmbedder(hold_s=10.0)
    limits = LimitsConfig(request_timeout_s=0.15)
    app = create_app(settings=settings.model_copy(update={"limits": limits}),
                     embedder_factory=lambda cfg: embedder)
    late: list[str] = []
    with TestClient(app, client=LOOPBACK) as client:
        holder = app.state.holder
        holder._swap(replace(holder.service, recorders=(*holder.service.recorders, Late(late))))
        started = time.perf_counter()
        r = client.post("/route", json={"prompt": "answer slowly please"})
        waited = time.perf_counter() - started
        assert r.status_code == 408, r.text
        assert waited < 0.5
        assert r.json() == {"error": "request timed out", "detail": [{
            "field": "limits.request_timeout_s", "limit": 0.15,
            "message": "the request took longer than the limit of 0.15 s; it was not answered "
                       "(retry, or route to your default model)"}]}

        # the timed-out work is not cancelled: it finishes and its decision reaches the hooks;
        # /route calls share one encoder thread (router/serving/batcher.py), so the next call waits
        # for it rather than overtaking it
        embedder.release.set()
        assert embedder.finished.wait(2.0)
        assert client.post("/route", json={"prompt": "say hello"}).status_code == 200
        deadline = time.monotonic() + 2.0
        while len(late) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(late) == 2
        assert 'tier_router_errors_total{kind="timeout"} 1.0' in client.get("/metrics").text


def test_admin_reload_is_not_time_limited(settings: Settings) -> None:
    limits = LimitsConfig(request_timeout_s=0.05)
    slow_start = SlowEmbedder(hold_s=0.0)

    def factory(cfg):
        time.sleep(0.2)  # a new encoder can take longer to load than a request may take
        return slow_start

    app = create_app(settings=settings.model_copy(update={"limits": limits}),
                     embedder_factory=factory)
    with TestClient(app, client=LOOPBACK) as client:
        holder = app.state.holder  # no encoder to reuse: the reload must build a new one
        holder._swap(replace(holder.service, embedder=None))
        assert client.post("/admin/reload", headers=JSON).status_code == 200
