"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temp dir, on a free port.

Uses the server binaries installed on the machine (Debian's `postgresql` package puts them in
/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so under root the
server runs as the `postgres` system user. `why_unavailable` says, in one line, why a test
that needs the server must skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _install_binaries() -> None:
    """The test setup installs Debian's `postgresql` when it can (root with apt-get), once."""
    if _bin_dir() is not None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
            return


def why_unavailable() -> str | None:
    """None when a server can be started here, else the reason."""
    _install_binaries()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'tier-router[postgres]')"
    if _bin_dir() is None:
        return ("no PostgreSQL server binaries (initdb, pg_ctl); install Debian's "
                "'postgresql' package to run these tests")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None



@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    bin_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.data_dir.parent, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.resume()
        return self

    def halt(self) -> None:
        """Stop the server as an outage would (connections cut), keeping its data."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start a halted server again on the same port and data."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=on"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l",
                  str(self.data_dir / "server.log"), "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def new_database(self, name: str) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def start_server() -> PostgresServer:
    """Start a server in a new temp dir (outside pytest's 0700 tree, so `postgres` can enter)."""
    base = Path(tempfile.mkdtemp(prefix="tier-router-pg-"))
    bin_dir = _bin_dir()
    assert bin_dir is not None
    return PostgresServer(base / "data", free_port(), bin_dir).start()
