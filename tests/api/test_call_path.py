"""How many of our modules does one POST /route enter? The path a maintainer has to follow.

`sys.setprofile` (and `threading.setprofile`, for the app's event-loop thread and the batcher's
worker) records every project function one /route call enters, from the HTTP handler down to
the trace store's enqueue, on the synthetic model and fake embedder of tests/conftest.py. The
store's writer thread is left out: it writes after the answer, off the request's path. Shared
modules (`errors`, the `config` and `schemas` packages) and package `__init__` files are not
counted.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import FakeEmbedder

ROUTER = Path(__file__).resolve().parents[2] / "router"
SHARED = {"__init__.py", "errors.py"}  # and the config and schemas packages
SHARED_PACKAGES = (str(ROUTER / "schemas"), str(ROUTER / "config"))
OFF_PATH_THREADS = ("trace-store",)  # the writer: after the answer
# The path is printed, not counted: what matters is that each step is in the one module a
# reader would look in (the decision: decision/pipeline.py and the steps it calls).


def entered_modules(settings: Settings, body: dict[str, Any]) -> set[str]:
    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        path = frame.f_code.co_filename
        if (path.startswith(str(ROUTER)) and Path(path).name not in SHARED
                and not path.startswith(SHARED_PACKAGES)):
            if not threading.current_thread().name.startswith(OFF_PATH_THREADS):
                seen.add(str(Path(path).relative_to(ROUTER.parent)))

    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    threading.setprofile(profile)  # threads started from here on: the app's and the batcher's
    try:
        with TestClient(app) as client:
            assert client.post("/route", json={"prompt": "warm up"}).status_code == 200
            time.sleep(0.1)
            seen.clear()
            sys.setprofile(profile)
            answer = client.post("/route", json=body)
            sys.setprofile(None)
            snapshot = set(seen)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        sys.setprofile(None)
    assert answer.status_code == 200, answer.text
    return snapshot


def test_one_route_call_enters_few_modules(settings: Settings) -> None:
    modules = entered_modules(settings, {"prompt": "say hello", "role": "planner"})
    print("\n/route enters:", *sorted(modules), sep="\n  ")
    assert "router/api/routes/route.py" in modules  # the trace did see the request
    assert {"router/serving/service.py", "router/decision/pipeline.py",
            "router/decision/policy.py"} <= modules, sorted(modules)
