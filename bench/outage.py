"""A provider outage replayed through /feedback errors against a real server: decisions move
off the failing model within `health.min_calls` failures and come back after recovery.

    .venv/bin/python bench/outage.py                 # ~30 s after the server is up
    .venv/bin/python bench/outage.py --cooldown 5 --outage 20

One agent, calls in sequence on 127.0.0.1: POST /route (`quality_target` 0, so the classifier
picks the cheapest tier, `small`: gpt-4.1-nano first, then gemini-2.0-flash-001), "calls" the
model it was given, and POSTs the outcome to /feedback: `error: timeout` while that model's
provider is down, else a success with a simulated latency. Phases:

1. healthy: every call succeeds;
2. outage: the first model of `small` times out; counted: its failures before decisions moved
   off it, then the share of decisions still sent to it (half-open probes after each cooldown);
3. recovery: it answers again; counted: seconds until a probe brought it back and the share of
   decisions it gets afterwards;
4. tier down: both models of `small` time out: decisions move to the next stronger tier
   (reason `health_upgrade`) and a call forced to `small` gets 503 naming it;
5. latency: both answer, the second faster; `latency_sensitive` calls get the faster one;
6. with `--agents N` (default 8), the first model's outage again with N agents calling at
   once: the calls it still gets, those in flight when its circuit opened included;
7. with `--replicas`, two replicas called in turn during the outage, their model health in one
   Redis (`shared_state`; a throwaway `redis-server`, skipped when there is none) and then
   per process: the calls the failing model got before neither replica sent it any.

Works in a temporary directory (config copy, fresh SQLite store); exploration off. Exit status
1 if decisions did not move off within min_calls failures or did not come back.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the checkout's router and tests

from harness import (  # noqa: E402
    Server,
    add_common_args,
    dump,
    print_table,
    prompt,
    write_config,
)

FIRST, SECOND = "gpt-4.1-nano", "gemini-2.0-flash-001"
LATENCY_MS = {FIRST: 420.0, SECOND: 260.0}  # simulated medians of the two providers


@dataclass
class Phase:
    name: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def on(self, model: str) -> int:
        return sum(1 for c in self.calls if c["model"] == model)

    def row(self) -> list[Any]:
        models = Counter(c["model"] for c in self.calls if c["model"])
        reasons = Counter(c["reason"] for c in self.calls)
        return [self.name, len(self.calls), sum(c["failed"] for c in self.calls),
                dict(models), dict(reasons)]


class Agent:
    """Routes, "calls" the model it got (failing if its provider is down), reports back."""

    def __init__(self, base: str, seed: int, pace_s: float):
        self.http = httpx.Client(base_url=base, timeout=30)
        self.rng = random.Random(seed)
        self.pace_s = pace_s
        self.down: set[str] = set()

    def call(self, phase: Phase, **extra: Any) -> dict[str, Any]:
        r = self.http.post("/route", json={"prompt": prompt(self.rng), "quality_target": 0.0,
                                           **extra})
        if r.status_code != 200:
            entry = {"status": r.status_code, "model": None, "tier": None,
                     "reason": f"http {r.status_code}", "failed": False, "body": r.json()}
            phase.calls.append(entry)
            return entry
        d = r.json()
        failed = d["model"] in self.down
        body: dict[str, Any] = {"decision_id": d["decision_id"], "model_used": d["model"],
                                "success": not failed}
        if failed:
            body.update(error="timeout", latency_ms=30_000.0)
        else:
            base = LATENCY_MS.get(d["model"], 800.0)
            body["latency_ms"] = round(self.rng.uniform(0.8, 1.2) * base, 1)
        fb = self.http.post("/feedback", json=body)
        if fb.status_code != 201:
            raise RuntimeError(f"/feedback answered {fb.status_code}: {fb.text}")
        entry = {"status": 200, "model": d["model"], "tier": d["tier"], "reason": d["reason"],
                 "failed": failed, "detail": d.get("detail"), "t": time.monotonic()}
        phase.calls.append(entry)
        time.sleep(self.pace_s)
        return entry

    def model_state(self, model: str) -> str:
        for tier in self.http.get("/tiers").json():
            for h in tier["health"]:
                if h["model"] == model:
                    return str(h["state"])
        raise KeyError(model)


def run(agent: Agent, min_calls: int, cooldown_s: float, outage_s: float, warm: int = 20
        ) -> dict[str, Any]:
    """The five phases; the figures and whether they hold."""
    phases: list[Phase] = []

    healthy = Phase("healthy")
    phases.append(healthy)
    for _ in range(warm):
        agent.call(healthy)

    outage = Phase("outage")
    phases.append(outage)
    agent.down = {FIRST}
    while time.monotonic() - outage.started < outage_s:
        agent.call(outage)
    models = [c["model"] for c in outage.calls]
    moved_after = models.index(SECOND) if SECOND in models else len(models)
    after_open = models[moved_after:]
    probes = sum(1 for m in after_open if m == FIRST)

    recovery = Phase("recovery")
    phases.append(recovery)
    agent.down = set()
    back_s = None
    while time.monotonic() - recovery.started < 3 * cooldown_s + 10:
        entry = agent.call(recovery)
        if entry["model"] == FIRST and back_s is None:
            back_s = entry["t"] - recovery.started
        if back_s is not None and len(recovery.calls) >= 10 and all(
                c["model"] == FIRST for c in recovery.calls[-10:]):
            break
    state_after = agent.model_state(FIRST)
    first_back = next((i for i, c in enumerate(recovery.calls) if c["model"] == FIRST), None)
    tail = recovery.calls[first_back:] if first_back is not None else []
    share_back = sum(c["model"] == FIRST for c in tail[1:]) / max(1, len(tail) - 1)

    tier_down = Phase("tier down")
    phases.append(tier_down)
    agent.down = {FIRST, SECOND}
    for _ in range(2 * min_calls + 10):
        agent.call(tier_down)
    upgraded = sum(1 for c in tier_down.calls if c["reason"] == "health_upgrade")
    first_up = next((i for i, c in enumerate(tier_down.calls)
                     if c["reason"] == "health_upgrade"), None)
    forced = agent.call(tier_down, tier="small")

    latency = Phase("latency")
    phases.append(latency)
    agent.down = set()
    time.sleep(cooldown_s + 0.6)  # both circuits cool down; probes bring them back
    deadline = time.monotonic() + 3 * cooldown_s + 10
    while time.monotonic() < deadline and not all(
            agent.model_state(m) == "closed" for m in (FIRST, SECOND)):
        agent.call(latency)
    for _ in range(2 * min_calls):  # latency samples for both
        agent.call(latency)
        agent.call(latency, tier="small", latency_sensitive=True)
    sensitive = [agent.call(latency, latency_sensitive=True) for _ in range(20)]
    fastest_share = sum(c["model"] == SECOND for c in sensitive) / len(sensitive)

    figures = {
        "min_calls": min_calls, "cooldown_s": cooldown_s,
        "failures_before_moving_off": moved_after,
        "outage_decisions": len(models),
        "outage_decisions_on_failing_model_after_open": probes,
        "outage_decisions_after_open": len(after_open),
        "seconds_from_recovery_to_first_decision_back": back_s,
        "state_after_recovery": state_after,
        "share_back_on_recovered_model": round(share_back, 3),
        "tier_down_failures_before_moving_up": first_up,
        "tier_down_decisions_moved_up": upgraded,
        "forced_down_tier": {"status": forced["status"],
                             "tier": (forced.get("body") or {}).get("tier")},
        "latency_sensitive_share_on_faster_model": round(fastest_share, 3),
    }
    checks = {
        "moved off within min_calls failures": moved_after <= min_calls,
        "came back after recovery": back_s is not None and state_after == "closed",
        "a down tier moves up": first_up is not None and first_up <= 2 * min_calls,
        "a forced down tier is a 503 naming it": figures["forced_down_tier"] == {
            "status": 503, "tier": "small"},
        "latency_sensitive gets the faster model": fastest_share >= 0.9,
    }
    return {"figures": figures, "checks": checks, "phases": [p.row() for p in phases]}


def concurrent_outage(base: str, agents: int, cooldown_s: float, seed: int, pace_s: float
                      ) -> dict[str, Any]:
    """`agents` agents at once while the first model is down, for less than one cooldown (so
    no probe is among them): how many calls it still got, counting those in flight when its
    circuit opened."""
    phase = Phase(f"outage, {agents} agents")
    stop = time.monotonic() + 0.8 * cooldown_s

    def work(i: int) -> None:
        agent = Agent(base, seed + 1 + i, pace_s)
        agent.down = {FIRST}
        while time.monotonic() < stop:
            agent.call(phase)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"agents": agents, "decisions": len(phase.calls), "on_failing_model": phase.on(FIRST),
            "phase": phase.row()}


def replicas_outage(work: Path, args: argparse.Namespace, shared: bool) -> dict[str, Any]:
    """Two replicas (each its own store; an agent's feedback goes to the replica that decided),
    one agent calling them in turn while the first model is down: how many calls it got
    before neither replica sent it any, with model health in one Redis or per process."""
    from tests import redis_server

    why = redis_server.why_unavailable()
    if why is not None:
        return {"skipped": why}
    redis = redis_server.start_server() if shared else None
    servers = []
    try:
        for i in range(2):
            changes = dict(config_changes(work / f"traces-{shared}-{i}.db", args))
            if redis is not None:
                changes["shared_state"] = {"url": redis.url, "retry_s": 0.5}
            config = write_config(args.config, work / f"config-{shared}-{i}.yaml", **changes)
            servers.append(Server(config, work / f"server-{shared}-{i}.log"))
        for server in servers:
            server.start()
        agents = [Agent(server.base, args.seed + i, args.pace) for i, server in
                  enumerate(servers)]
        phase = Phase("outage, 2 replicas " + ("(shared)" if shared else "(per process)"))
        for agent in agents:
            agent.down = {FIRST}
        streak = 0
        while streak < 20 and len(phase.calls) < 400:
            entry = agents[len(phase.calls) % 2].call(phase)
            streak = 0 if entry["model"] == FIRST else streak + 1
        return {"shared": shared, "on_failing_model": phase.on(FIRST),
                "decisions": len(phase.calls), "phase": phase.row()}
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            redis.close()


def config_changes(store: Path, args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "store": {"url": f"sqlite:///{store}", "flush_interval_ms": 5},
        "exploration_rate": 0.0,
        "health": {"window_s": 60, "min_calls": args.min_calls, "max_error_rate": 0.5,
                   "cooldown_s": args.cooldown, "probe_share": args.probe_share}}
    if args.model_dir is not None:
        changes["model_dir"] = str(args.model_dir.resolve())
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, "model directory (default: the shipped one)")
    parser.add_argument("--min-calls", type=int, default=5)
    parser.add_argument("--cooldown", type=float, default=3.0, help="health.cooldown_s")
    parser.add_argument("--probe-share", type=float, default=0.2)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds of outage")
    parser.add_argument("--pace", type=float, default=0.01, help="pause between calls (s)")
    parser.add_argument("--agents", type=int, default=8,
                        help="then an outage with this many agents at once (0: skip)")
    parser.add_argument("--replicas", action="store_true",
                        help="then two replicas, health in one Redis and per process")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tier-router-outage-") as tmp:
        work = Path(tmp)
        changes = config_changes(work / "traces.db", args)
        config = write_config(args.config, work / "config.yaml", **changes)
        server = Server(config, work / "server.log")
        ready = server.start()
        try:
            if not ready.get("ready"):
                print(f"the server is not ready: {ready}", file=sys.stderr)
                return 1
            result = run(Agent(server.base, args.seed, args.pace), args.min_calls,
                         args.cooldown, args.outage)
            if args.agents:
                time.sleep(args.cooldown + 1)  # the latency phase's circuits settle
                many = concurrent_outage(server.base, args.agents, args.cooldown, args.seed,
                                         args.pace)
                result["phases"].append(many.pop("phase"))
                result["figures"]["concurrent_outage"] = many
                result["checks"]["concurrent: moved off within min_calls + agents calls"] = (
                    many["on_failing_model"] <= args.min_calls + args.agents)
        finally:
            server.stop()
        if args.replicas:
            for shared in (True, False):
                two = replicas_outage(work, args, shared)
                if "phase" in two:
                    result["phases"].append(two.pop("phase"))
                result["figures"][f"replicas_{'shared' if shared else 'local'}"] = two
            figure = result["figures"]["replicas_shared"]
            if "skipped" not in figure:
                result["checks"]["2 replicas on one Redis: moved off within min_calls + 1"] = (
                    figure["on_failing_model"] <= args.min_calls + 1)
    print_table(["phase", "calls", "failed", "models", "reasons"], result["phases"])
    print()
    for name, value in result["figures"].items():
        print(f"{name}: {value}")
    print()
    for name, ok in result["checks"].items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if args.out is not None:
        dump(args.out, result)
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
