"""Faults: break the model file, the config and the trace store in turn while traffic flows,
and show the service keeps answering (degraded, with the reason, where it must) and recovers
after a fix and a reload.

    .venv/bin/python bench/faults.py --step 5

Works on copies: the model directory and the config are copied into a temporary directory, and
the trace store is a fresh SQLite file there; nothing shipped is touched. Traffic: a few
workers POST /route (and /feedback for the decisions they get) on 127.0.0.1 the whole time.
Each step does one thing, lets traffic run --step seconds, and reports what the clients saw.
Exit status 1 if any step did not behave as stated in its "expect" column.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import shutil
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from harness import (
    Server,
    add_common_args,
    dump,
    metric,
    percentile,
    print_table,
    prompt,
    write_config,
)

from router.config import load_settings

STORE_METRICS = ("tier_router_store_decisions_written_total", "tier_router_store_dropped_total",
                 "tier_router_store_write_errors_total")


@dataclass
class Answer:
    step: str
    endpoint: str
    status: int
    seconds: float
    reason: str = ""
    detail: str = ""


@dataclass
class Traffic:
    """Background clients; every answer is filed under the step that was running."""

    base: str
    concurrency: int
    seed: int
    step: str = "start"
    answers: list[Answer] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    running: asyncio.Event = field(default_factory=asyncio.Event)
    stop: bool = False

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            await asyncio.gather(*(self._route(client, i) for i in range(self.concurrency)),
                                 self._feedback(client))

    async def _route(self, client: httpx.AsyncClient, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        while not self.stop:
            await self.running.wait()
            body = await self._send(client, "/route", {"prompt": prompt(rng), "role": "bench"})
            if body.get("decision_id"):
                self.decisions.append(body["decision_id"])

    async def _feedback(self, client: httpx.AsyncClient) -> None:
        while not self.stop:
            await self.running.wait()
            if not self.decisions:
                await asyncio.sleep(0.05)
                continue
            await self._send(client, "/feedback", {"decision_id": self.decisions.pop(),
                                                   "success": True, "cost_usd": 0.0001})
            await asyncio.sleep(0.05)

    async def _send(self, client: httpx.AsyncClient, path: str, body: dict) -> dict[str, Any]:
        step, started = self.step, time.perf_counter()
        try:
            r = await client.post(path, json=body)
            status, payload = r.status_code, r.json()
        except (httpx.HTTPError, ValueError):
            status, payload = -1, {}
        payload = payload if isinstance(payload, dict) else {}
        detail = payload.get("detail") or ""
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            detail = detail[0].get("message", "")
        self.answers.append(Answer(step, path, status, time.perf_counter() - started,
                                   str(payload.get("reason", "")), f"{path} {status}: {detail}"
                                   if detail else ""))
        return payload


@dataclass
class Step:
    name: str
    action: Callable[[], Awaitable[str]]
    expect: str
    check: Callable[[list[Answer], str], bool]
    min_seconds: float = 0.0


class Faults:
    """The files being broken and mended, and the server being poked."""

    def __init__(self, work: Path, base_config: Path | None, model_dir: Path | None):
        settings = load_settings(base_config or None, environ={})
        self.model = Path(shutil.copytree(model_dir or settings.model_dir, work / "model"))
        self.head = self.model / "head.joblib"
        self.head_bytes = self.head.read_bytes()
        self.db = work / "traces.db"
        self.config = write_config(base_config, work / "config.yaml", model_dir=str(self.model),
                                   store={"url": f"sqlite:///{self.db}"})
        self.config_text = self.config.read_text()
        self.server = Server(self.config, work / "server.log")
        self.lock: sqlite3.Connection | None = None

    async def post(self, path: str) -> tuple[int, Any]:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=120) as client:
            r = await client.post(path, headers={"Content-Type": "application/json"})
            return r.status_code, r.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=30) as client:
            r = await client.get(path)
            return r.status_code, (r.json() if path != "/metrics" else r.text)

    async def reload(self) -> str:
        status, body = await self.post("/admin/reload")
        return f"reload -> {status}: {_short(body)}"

    async def corrupt_model(self) -> str:
        self.head.write_bytes(self.head_bytes[: len(self.head_bytes) // 2] + b"\x00garbage")
        return "head.joblib truncated; " + await self.reload()

    async def restart(self, traffic: Traffic) -> str:
        traffic.running.clear()
        await asyncio.sleep(0.5)  # let requests in flight finish
        self.server.stop()
        ready = await asyncio.to_thread(self.server.start)
        traffic.running.set()
        return f"restarted; readyz: {_short(ready)}"

    async def restore_model(self) -> str:
        self.head.write_bytes(self.head_bytes)
        return "head.joblib restored; " + await self.reload()

    async def bad_yaml(self) -> str:
        self.config.write_text(self.config_text + "\ntiers: [unclosed\n")
        return "config is not YAML; " + await self.reload()

    async def bad_reference_sighup(self) -> str:
        raw = yaml.safe_load(self.config_text)
        raw["safe_tier"] = "no-such-tier"
        self.config.write_text(yaml.safe_dump(raw))
        before = metric((await self.get("/metrics"))[1], "tier_router_reloads_total")
        assert self.server.proc is not None
        self.server.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.5)
        text = (await self.get("/metrics"))[1]
        refused = metric(text, 'tier_router_reloads_total{outcome="refused"}')
        return (f"safe_tier: no-such-tier, SIGHUP; reloads {before:.0f} -> "
                f"{metric(text, 'tier_router_reloads_total'):.0f} ({refused:.0f} refused so far)")

    async def fix_config(self) -> str:
        raw = yaml.safe_load(self.config_text)
        raw["tiers"][0]["input_price_per_m"] = 0.07
        self.config.write_text(yaml.safe_dump(raw))
        outcome = await self.reload()
        price = (await self.get("/tiers"))[1][0]["input_price_per_m"]
        return f"config fixed (small tier price 0.07); {outcome}; /tiers small price {price}"

    async def lock_store(self) -> str:
        self.lock = sqlite3.connect(self.db, isolation_level=None, timeout=5)
        self.lock.execute("BEGIN EXCLUSIVE")
        return "another process holds an exclusive lock on traces.db"

    async def unlock_store(self) -> str:
        if self.lock is not None:
            self.lock.execute("ROLLBACK")
            self.lock.close()
            self.lock = None
        return "lock released; " + await self.reload()

    async def store_numbers(self) -> dict[str, float]:
        text = (await self.get("/metrics"))[1]
        return {name.replace("tier_router_store_", ""): metric(text, name)
                for name in STORE_METRICS}


def route_answers(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.endpoint == "/route"]


def all_route(reason: str, need: str = "") -> Callable[[list[Answer], str], bool]:
    """Every /route answer was 200 with `reason` (and `need` in its detail)."""
    def check(answers: list[Answer], _: str) -> bool:
        routes = route_answers(answers)
        return bool(routes) and all(a.status == 200 and a.reason == reason and need in a.detail
                                    for a in routes)
    return check


def and_outcome(words: str, inner: Callable[[list[Answer], str], bool]) -> Callable[..., bool]:
    return lambda answers, outcome: words in outcome and inner(answers, outcome)


def feedback_all(statuses: set[int]) -> Callable[[list[Answer], str], bool]:
    def check(answers: list[Answer], _: str) -> bool:
        fb = [a for a in answers if a.endpoint == "/feedback"]
        return bool(fb) and all(a.status in statuses for a in fb)
    return check


def steps(f: Faults, traffic: Traffic, with_store: bool) -> list[Step]:
    ok = all_route("classifier")
    out = [
        Step("baseline", _noop, "200 classifier", ok),
        Step("model: corrupt head, reload", f.corrupt_model, "reload 409; old model serves",
             and_outcome("reload -> 409", ok)),
        Step("model: restart on corrupt head", lambda: f.restart(traffic),
             "readyz 503; 200 degraded, reason says sha256",
             and_outcome("'ready': False", all_route("degraded", "sha256"))),
        Step("model: restore, reload", f.restore_model, "reload 200; 200 classifier",
             and_outcome("reload -> 200", ok)),
        Step("config: not YAML, reload", f.bad_yaml, "reload 409; 200 classifier",
             and_outcome("reload -> 409", ok)),
        Step("config: bad tier, SIGHUP", f.bad_reference_sighup, "refused; 200 classifier",
             and_outcome("refused", ok)),
        Step("config: fixed, reload", f.fix_config, "reload 200; new price served",
             and_outcome("small price 0.07", ok)),
    ]
    if with_store:
        out += [
            Step("store: locked by another process", f.lock_store,
                 "/route 200; /feedback waits, then 503/408 with why (2xx once unlocked)",
                 lambda a, o: ok(a, o) and feedback_all({200, 201, 408, 503})(a, o)
                 and any(x.status >= 500 for x in a if x.endpoint == "/feedback"),
                 min_seconds=12),
            Step("store: unlocked, reload", f.unlock_store, "reload 200; /feedback 2xx again",
                 and_outcome("reload -> 200", lambda a, o: ok(a, o)
                             and feedback_all({200, 201})(a, o))),
        ]
    return out


async def _noop() -> str:
    return "-"


def store_available(config: Path) -> str | None:
    """None when the trace store can be faulted here, else why not."""
    if importlib.util.find_spec("router.traces.store") is None:
        return "router/traces/store.py is not in this build"
    store = load_settings(config, environ={}).store
    if not store.enabled:
        return "store.enabled is false"
    if not store.url.startswith("sqlite"):
        return "the lock fault is written for SQLite"
    return None


async def run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    f = Faults(work, args.config, args.model_dir)
    no_store = store_available(f.config)
    if no_store:
        print(f"trace store phase skipped: {no_store}")
    print(f"server: {await asyncio.to_thread(f.server.start)}  ({f.server.base})")
    traffic = Traffic(f.server.base, args.concurrency, args.seed)
    traffic.running.set()
    runner = asyncio.create_task(traffic.run())
    done = []
    try:
        for step in steps(f, traffic, no_store is None):
            before = await f.store_numbers() if no_store is None else {}
            traffic.step = "(acting)"
            outcome = await step.action()
            traffic.step = step.name
            await asyncio.sleep(max(args.step, step.min_seconds))
            traffic.step = "(between)"
            after = await f.store_numbers() if no_store is None else {}
            done.append((step, outcome, before, after))
    finally:
        traffic.stop = True
        traffic.running.set()
        await asyncio.wait_for(runner, 60)  # answers are filed under the step they were sent in
        if f.lock is not None:
            f.lock.close()
        f.server.stop()
    return [_row(step, outcome, [a for a in traffic.answers if a.step == step.name], before,
                 after) for step, outcome, before, after in done]


def _row(step: Step, outcome: str, answers: list[Answer], before: dict[str, float],
         after: dict[str, float]) -> dict[str, Any]:
    routes = route_answers(answers)
    feedback = [a for a in answers if a.endpoint == "/feedback"]
    details = Counter(a.detail[:110] for a in answers if a.detail)
    return {
        "step": step.name, "outcome": outcome, "expect": step.expect,
        "passed": step.check(answers, outcome),
        "route": len(routes), "route_status": dict(Counter(a.status for a in routes)),
        "reasons": dict(Counter(a.reason for a in routes)),
        "p99_ms": percentile([a.seconds * 1000 for a in routes], 99),
        "feedback_status": dict(Counter(a.status for a in feedback)),
        "store": {k: after[k] - before[k] for k in after},
        "details": dict(details.most_common(3)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, "model to copy and break")
    parser.add_argument("--step", type=float, default=5.0, help="seconds of traffic per step")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tier-router-faults-"))
    rows = asyncio.run(run(args, work))
    print()
    print_table(["step", "expect", "ok", "/route", "status", "reasons", "p99 ms", "/feedback",
                 "store (delta)"],
                [[r["step"], r["expect"], "yes" if r["passed"] else "NO", r["route"],
                  r["route_status"], r["reasons"], r["p99_ms"], r["feedback_status"] or "-",
                  r["store"] or "-"] for r in rows])
    print("\nwhat each step did, and the reasons clients were given:")
    for r in rows:
        print(f"- {r['step']}: {r['outcome']}")
        for detail, count in r["details"].items():
            print(f"    {count} x {detail!r}")
    print(f"\nserver log: {work / 'server.log'}")
    if args.out:
        dump(args.out, rows)
    return 0 if all(r["passed"] for r in rows) else 1


def _short(body: Any, limit: int = 160) -> str:
    text = str(body)
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    raise SystemExit(main())
