"""The path one POST /route takes through our code, printed as a map for a maintainer to follow.

`sys.setprofile` (and `threading.setprofile`, for the app's event-loop thread and the batcher's
worker) records every project function one /route call enters, from the HTTP handler down to
the trace store's enqueue, on the synthetic model and fake embedder of tests/conftest.py. The
store's writer thread is left out: it writes after the answer, off the request's path. Shared
modules (`errors`, the `config` and `schemas` packages) and package `__init__` files are left
out too. The map (`pytest -s`) lists each module in the order the call first enters it, with
the functions it runs there; no count is asserted: what matters is that each step is in the
one place a reader would look.
"""

from __future__ import annotations

import sys
import threading
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


def path_map(settings: Settings, body: dict[str, Any]) -> dict[str, list[str]]:
    """Module -> the functions one /route call runs in it, both in order of first entry."""
    seen: dict[str, dict[str, None]] = {}

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        path = frame.f_code.co_filename
        if (path.startswith(str(ROUTER)) and Path(path).name not in SHARED
                and not path.startswith(SHARED_PACKAGES)):
            if not threading.current_thread().name.startswith(OFF_PATH_THREADS):
                module = str(Path(path).relative_to(ROUTER.parent))
                functions = seen.setdefault(module, {})
                name = frame.f_code.co_qualname
                if not name.rsplit(".", 1)[-1].startswith("<"):  # comprehensions: their function's
                    functions[name] = None

    app = create_app(settings=settings, embedder_factory=lambda cfg: FakeEmbedder())
    threading.setprofile(profile)  # threads started from here on: the app's and the batcher's
    try:
        with TestClient(app) as client:
            assert client.post("/route", json={"prompt": "warm up"}).status_code == 200
            seen.clear()
            sys.setprofile(profile)
            answer = client.post("/route", json=body)
            sys.setprofile(None)
            snapshot = {module: list(functions) for module, functions in seen.items()}
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        sys.setprofile(None)
    assert answer.status_code == 200, answer.text
    return snapshot


def test_the_route_path_is_traced_from_the_handler_to_the_policy(settings: Settings) -> None:
    modules = path_map(settings, {"prompt": "say hello", "role": "planner"})
    print(f"\n/route runs {len(modules)} modules, in order:")
    for module, functions in modules.items():
        print(f"  {module}: {', '.join(functions)}")
    assert "router/api/routes/route.py" in modules  # the trace did see the request
    assert {"router/serving/service.py", "router/decision/pipeline.py",
            "router/decision/policy.py"} <= set(modules), list(modules)
