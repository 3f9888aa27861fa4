"""What bench/soak.py and bench/faults.py share: a real `tier-router serve` on a free loopback
port, a config written for the run, the request mix, and percentile / table printing.

Traffic only ever goes to 127.0.0.1, bounded in time and count; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]

TOPICS = ["a binary search tree", "the French revolution", "photosynthesis", "a REST API",
          "compound interest", "the Riemann hypothesis", "a sourdough starter", "TCP congestion",
          "the prime number theorem", "a SQL join", "Kubernetes pods", "the Krebs cycle"]
ASKS = ["Explain {t} in two sentences.", "Write a Python function related to {t}.",
        "Prove a non-trivial statement about {t}.", "Give three facts about {t}.",
        "Summarise the main debate around {t} for an expert.", "What is {t}?"]
SYSTEM = ("You are an autonomous operations agent. Follow the policies, reason step by step, "
          "use tools instead of guessing, and ask before anything irreversible. ") * 20
TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": f"Operation {i}.",
                                           "parameters": {"type": "object"}}} for i in range(6)]


def add_common_args(parser: argparse.ArgumentParser, model_help: str) -> None:
    """The flags every bench script shares: base config, model, seed, JSON output."""
    parser.add_argument("--config", type=Path, default=None, help="base config (default: shipped)")
    parser.add_argument("--model-dir", type=Path, default=None, help=model_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write results as JSON")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(base: Path | None, out: Path, **changes: Any) -> Path:
    """The base config (default: the shipped one) with `changes`; model_dir made absolute."""
    from router.config import default_config_path, load_settings

    source = base or default_config_path()
    raw = yaml.safe_load(source.read_text())
    raw["model_dir"] = str(load_settings(source, environ={}).model_dir)
    raw.update(changes)
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


class Server:
    """`python -m router.cli.main serve` as a child process, logs to a file."""

    def __init__(self, config: Path, log_path: Path, port: int | None = None,
                 root: Path = ROOT):
        self.config = config
        self.root = root  # the source tree to run (another checkout, to bench an old commit)
        self.log_path = log_path
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> dict[str, Any]:
        """Start and wait until /readyz answers (200, or 503 when the model is bad)."""
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "router.cli.main", "serve", "--config", str(self.config),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.root, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                r = httpx.get(f"{self.base}/readyz", timeout=2)
                if r.status_code in (200, 503):
                    return dict(r.json())
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s; see {self.log_path}")

    def rss_mb(self) -> float:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far, all threads."""
        assert self.proc is not None
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def cpu_wait_seconds(self) -> float:
        """Time the server's threads have spent ready to run but waiting for a core (the run
        queue, /proc/<pid>/task/*/schedstat), so far; NaN where the kernel does not say. On a
        shared machine, this is the CPU the neighbours took from it."""
        assert self.proc is not None
        total = 0.0
        try:
            tasks = list(Path(f"/proc/{self.proc.pid}/task").iterdir())
        except OSError:
            return float("nan")
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
        return total

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


@dataclass(frozen=True)
class Kind:
    """One kind of request in the mix, and the statuses that count as a correct answer."""

    name: str
    weight: float
    expected: frozenset[int]
    valid: bool


@dataclass
class Call:
    method: str
    path: str
    json_body: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def prompt(rng: random.Random) -> str:
    """Varied enough that the embedding cache does not answer everything."""
    return rng.choice(ASKS).format(t=rng.choice(TOPICS)) + f" (case {rng.randrange(10_000)})"


def agent_body(rng: random.Random) -> dict[str, Any]:
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": prompt(rng)},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "tool_1", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "status: ok; 3 records found"},
    ], "tools": TOOLS, "task": rng.choice(["plan", "act", "synthesize", None]),
        "run_id": f"run-{rng.randrange(50)}", "role": rng.choice(["planner", "coder", "critic"])}


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                        enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    return str(value)


def metric(text: str, name: str) -> float:
    """Sum of a Prometheus metric's samples (all label sets) in /metrics text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            rest = line[len(name):]
            if rest[:1] in ("{", " "):
                total += float(rest.rsplit(" ", 1)[1])
    return total


def dump(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
