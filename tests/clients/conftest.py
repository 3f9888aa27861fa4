"""The client package is tested from this checkout's `clients/python` (put first on sys.path):
the root project cannot name it as a dependency, since pip refuses a relative path in a
requirement, and an installed copy may be another checkout's. Its tests run against a real
`tier-router serve` on a free loopback port, in a temp dir, on the synthetic model."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_reload import write_config
from tests.integration.service import ROOT, Server, free_port

CLIENT_SRC = ROOT / "clients" / "python"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))


@pytest.fixture(scope="package")
def live(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One open (keyless) service for the client tests: synthetic head, real encoder."""
    work = tmp_path_factory.mktemp("client-live")
    config = write_config(work / "c.yaml", model_dir)
    server = Server(config, work / "server.log").start(ready="/readyz")
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


@pytest.fixture
def closed_url() -> str:
    """A loopback port nothing listens on: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"
