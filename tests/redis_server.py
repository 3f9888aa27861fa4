"""A throwaway Redis server for tests: `redis-server` in a temp dir, on a free port.

Uses the binary installed on the machine (Debian's `redis-server` package); the test setup
installs it with apt-get when it can, as `tests/pg_server.py` does for PostgreSQL.
`why_unavailable` says, in one line, why a test that needs the server must skip. Nothing is
persisted (no RDB, no AOF): a restart starts empty, as a lost Redis would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_port


def _install_binary() -> None:
    if shutil.which("redis-server") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
            return


def why_unavailable() -> str | None:
    """None when a server can be started here, else the reason."""
    _install_binary()
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package (redis-py) is not installed (pip install -e .)"
    if shutil.which("redis-server") is None:
        return "no redis-server binary; install Debian's 'redis-server' package to run these tests"
    return None



@dataclass
class RedisServer:
    """One redis-server process; `stop` and `start` again keep the port (a restart)."""

    base: Path
    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.base),
             "--save", "", "--appendonly", "no", "--protected-mode", "no",
             "--logfile", str(self.base / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}; see "
                           f"{self.base / 'redis.log'}")

    def stop(self) -> None:
        """Kill the server (SIGKILL: what a crash or a lost host looks like)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def start_server() -> RedisServer:
    """Start a server in a new temp dir on a free port."""
    base = Path(tempfile.mkdtemp(prefix="tier-router-redis-"))
    return RedisServer(base, free_port()).start()
