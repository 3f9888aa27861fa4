"""Start and stop a real `tier-router serve` (uvicorn) on a free loopback port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = ROOT / "models" / "default"



def write_config(path: Path, **overrides: object) -> Path:
    """The shipped config with `overrides` (store, model_dir, ...), as a file."""
    raw = yaml.safe_load((ROOT / "router" / "default_config.yaml").read_text())
    raw.update(overrides)
    path.write_text(yaml.safe_dump(raw))
    return path


class Server:
    """One server process; `start` waits until it answers, `kill` is SIGKILL."""

    def __init__(self, config: Path, log: Path):
        self.config = config
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: str = "/healthz", timeout: float = 240) -> Server:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "router.cli.main", "serve", "--config", str(self.config),
                 "--port", str(self.port)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + ready, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"server not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> bool:
        """SIGTERM (graceful: the store flushes); True if the process ended cleanly.

        uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is clean too.
        """
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60) in (0, -signal.SIGTERM)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def send_huge_header(port: int, size: int) -> tuple[int, bytes, float]:
    """Stream a request whose one header is `size` bytes; (bytes the server took before it
    closed, its answer, seconds)."""
    started = time.monotonic()
    sent, chunk = 0, b"a" * 65_536
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while part := sock.recv(65_536):
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    return sent, answer, time.monotonic() - started
