"""Request headers are bounded by the real server (`tier-router serve`): 431 past
limits.max_header_bytes, and a 64 MB header is never read whole."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.service import SHIPPED_MODEL, Server, send_huge_header, write_config


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("headers")
    config = write_config(work / "config.yaml", model_dir=str(SHIPPED_MODEL),
                          store={"url": f"sqlite:///{work / 'traces.db'}"},
                          limits={"max_header_bytes": 65_536})
    running = Server(config, work / "server.log").start()
    yield running
    running.stop()


def test_a_64_mb_header_is_431_and_not_read_whole(server: Server) -> None:
    sent, answer, seconds = send_huge_header(server.port, 64 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["detail"][0]["limit"] == 65_536
    assert sent < 16 * 1024 * 1024, f"the server took {sent} bytes before closing"
    assert seconds < 10
    assert httpx.get(server.url + "/healthz").status_code == 200  # and it serves on


def test_headers_within_the_limit_and_a_large_body_pass(server: Server) -> None:
    r = httpx.get(server.url + "/healthz", headers={"X-Big": "b" * 60_000})
    assert r.status_code == 200
    r = httpx.get(server.url + "/healthz", headers={"X-Big": "b" * 70_000})
    assert r.status_code == 431
    # a body far past the header limit, in the same reads as its headers, is not a header
    r = httpx.post(server.url + "/route", json={"prompt": "x" * 900_000}, timeout=60)
    assert r.status_code == 200, r.text

