"""Two replicas, one PostgreSQL, one Redis: do the limits hold for the fleet, not per process?

    .venv/bin/python bench/replicas.py                 # ~3 min: three phases, one table each
    .venv/bin/python bench/replicas.py --baseline      # also the same traffic without Redis

Starts a throwaway PostgreSQL (tests/pg_server.py) and Redis (tests/redis_server.py) in temp
dirs, and two real `tier-router serve` processes on them (the shipped model), then drives both
replicas together from one client process, on 127.0.0.1 only:

1. **rate**: one key with `rate_per_minute` R, hammered on both replicas for --rate-s seconds
   at several times R. Reported: the most 200s the key got in any 60 seconds (client receive
   times) against R plus the calls in flight (--clients per replica: the default 1 is "one
   in-flight call per replica"; a call admitted just inside the server's window can be
   answered just outside the client's).
2. **budget**: a team budget over one key, forced to the dearest tier until it is spent on both
   replicas. Reported: the estimated spend of the 200s against the limit, the overspend in calls
   against the calls in flight (the client's concurrency), and the store's figure.
3. **redis fault**: traffic on both replicas; Redis is killed for --outage-s seconds, then
   started again (empty). Reported: statuses before, during and after; /readyz and the
   `tier_router_shared_state_up` gauge during the outage. No 5xx is allowed.

Exit status 1 if a bound does not hold or a 5xx was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the checkout's router and tests, not another

from harness import Server, agent_body, metric, print_table, write_config  # noqa: E402

from router.guards.auth import hash_key  # noqa: E402
from tests import pg_server, redis_server  # noqa: E402

KEYS = {"fleet": "bench-fleet-key", "spender": "bench-spender-key", "ops": "bench-ops-key"}


def config_for(base: Path, db_url: str, redis_url: str | None, rate: int,
               budget_usd: float) -> Path:
    keys = [
        {"name": "fleet", "sha256": hash_key(KEYS["fleet"]), "scopes": ["route", "feedback"],
         "rate_per_minute": rate},
        {"name": "spender", "sha256": hash_key(KEYS["spender"]), "scopes": ["route"]},
        {"name": "ops", "sha256": hash_key(KEYS["ops"]), "scopes": ["route", "feedback",
                                                                     "admin"]},
    ]
    changes: dict[str, Any] = {
        "store": {"url": db_url}, "auth": {"keys": keys}, "exploration_rate": 0.0,
        "budgets": [{"name": "spender-team", "api_keys": ["spender"], "limit_usd": budget_usd,
                     "period": "day"},
                    # the whole fleet: every /route is checked (and its spend added) in Redis
                    {"name": "fleet", "limit_usd": 1000.0, "period": "month"}],
    }
    if redis_url is not None:
        changes["shared_state"] = {"url": redis_url, "on_unavailable": "local", "retry_s": 0.5}
    return write_config(None, base / f"config-{'shared' if redis_url else 'local'}.yaml",
                        **changes)


def headers(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


async def drive(bases: list[str], key: str, seconds: float, per_replica: int,
                body: dict[str, Any] | None = None,
                log: list[tuple[float, int, int, dict[str, Any]]] | None = None,
                pause_s: float = 0.0) -> list[tuple[float, int, int, dict[str, Any]]]:
    """`per_replica` clients per replica POST /route for `seconds`; each answer as (receive
    time, replica, status, body)."""
    answers = log if log is not None else []
    deadline = time.monotonic() + seconds

    async def client(replica: int, index: int) -> None:
        import random

        rng = random.Random(replica * 1000 + index)
        async with httpx.AsyncClient(base_url=bases[replica], timeout=30) as http:
            while time.monotonic() < deadline:
                payload = body if body is not None else agent_body(rng)
                try:
                    r = await http.post("/route", json=payload, headers=headers(key))
                    status, data = r.status_code, r.json()
                except httpx.HTTPError as exc:
                    status, data = 599, {"error": type(exc).__name__}
                answers.append((time.monotonic(), replica, status, data))
                if pause_s:
                    await asyncio.sleep(pause_s)

    await asyncio.gather(*(client(r, i) for r in range(len(bases)) for i in range(per_replica)))
    return answers


def most_in_any_minute(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 60.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def rate_phase(bases: list[str], rate: int, seconds: float, per_replica: int,
               label: str) -> tuple[list[Any], bool, bool]:
    answers = asyncio.run(drive(bases, "fleet", seconds, per_replica, pause_s=0.05))
    ok = [t for t, _, status, _ in answers if status == 200]
    statuses = Counter(status for _, _, status, _ in answers)
    most = most_in_any_minute(ok)
    bound = rate + per_replica * len(bases)  # a client times answers, the server admissions
    row = [label, f"{seconds:.0f}", len(answers), dict(statuses), rate, most, bound,
           "yes" if most <= bound else "NO"]
    return row, most <= bound, not any(s >= 500 for s in statuses)


def budget_phase(bases: list[str], limit: float, per_replica: int) -> tuple[list[Any], bool]:
    body = {"messages": [{"role": "user", "content": "Plan a three-step database migration."}],
            "tier": "large", "max_tokens": 400}
    answers = asyncio.run(drive(bases, "spender", 20, per_replica, body=body))  # spent in ~3 s
    ok = [data for _, _, status, data in answers if status == 200]
    spent = sum(d["estimated_cost_usd"] for d in ok)
    per_call = max((d["estimated_cost_usd"] for d in ok), default=0.0)
    over_calls = max(0.0, (spent - limit) / per_call) if per_call else 0.0
    in_flight = per_replica * len(bases)
    refused = Counter(data.get("budget") for _, _, status, data in answers if status == 402)
    time.sleep(1.5)  # the store's queue flushes
    rows = httpx.get(bases[0] + "/spend", params={"by": "api_key"}, headers=headers("ops"),
                     timeout=30).json()["rows"]
    store = sum(r["cost_usd"] for r in rows if r["key"] == "spender")
    statuses = Counter(status for _, _, status, _ in answers)
    ok_bound = over_calls <= in_flight
    return [f"{limit:.4f}", len(ok), f"{per_call:.6f}", f"{spent:.4f}", f"{store:.4f}",
            f"{over_calls:.2f}", in_flight, dict(statuses), dict(refused),
            "yes" if ok_bound else "NO"], ok_bound and not any(s >= 500 for s in statuses)


def fault_phase(bases: list[str], redis: redis_server.RedisServer, outage_s: float,
                per_replica: int) -> tuple[list[list[Any]], list[str], bool]:
    answers: list[Any] = []
    marks: dict[str, float] = {}
    seen: list[str] = []

    async def run() -> None:
        traffic = asyncio.create_task(drive(bases, "ops", 10 + outage_s + 10, per_replica,
                                            log=answers, pause_s=0.02))
        await asyncio.sleep(10)
        marks["stop"] = time.monotonic()
        redis.stop()
        await asyncio.sleep(min(2.0, outage_s / 2))
        async with httpx.AsyncClient(timeout=10) as http:
            ready = (await http.get(bases[0] + "/readyz")).json()
            gauge = metric((await http.get(bases[1] + "/metrics")).text,
                           "tier_router_shared_state_up")
        seen.append(f"during the outage: /readyz shared_state = {ready.get('shared_state')!r}")
        seen.append(f"during the outage: tier_router_shared_state_up = {gauge}")
        await asyncio.sleep(outage_s - min(2.0, outage_s / 2))
        redis.start()
        marks["start"] = time.monotonic()
        await traffic
        async with httpx.AsyncClient(timeout=10) as http:
            ready = (await http.get(bases[1] + "/readyz")).json()
            gauge = metric((await http.get(bases[0] + "/metrics")).text,
                           "tier_router_shared_state_up")
        seen.append(f"after: /readyz shared_state = {ready.get('shared_state')!r}, gauge {gauge}")

    asyncio.run(run())
    rows, clean = [], True
    for name, lo, hi in (("before", 0.0, marks["stop"]), ("redis down", marks["stop"],
                                                         marks["start"]),
                         ("after restart", marks["start"], float("inf"))):
        part = [(status, replica) for t, replica, status, _ in answers if lo <= t < hi]
        statuses = Counter(s for s, _ in part)
        fives = sum(n for s, n in statuses.items() if s >= 500)
        clean = clean and fives == 0
        rows.append([name, len(part), dict(statuses), fives])
    return rows, seen, clean


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=60, help="the key's rate_per_minute")
    parser.add_argument("--rate-s", type=float, default=75.0, help="seconds of the rate phase")
    parser.add_argument("--budget-usd", type=float, default=0.2)
    parser.add_argument("--outage-s", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients per replica")
    parser.add_argument("--baseline", action="store_true",
                        help="also run the rate phase on replicas without shared_state")
    args = parser.parse_args()
    for why in (pg_server.why_unavailable(), redis_server.why_unavailable()):
        if why is not None:
            print(f"cannot run: {why}")
            return 2
    work = Path(tempfile.mkdtemp(prefix="tier-router-replicas-"))
    pg = pg_server.start_server()
    redis = redis_server.start_server()
    servers: list[Server] = []
    good = True
    try:
        rate_rows = []
        variants = [("shared", redis.url)] + ([("local", None)] if args.baseline else [])
        for name, url in variants:
            db = pg.new_database(f"bench_{name}")
            config = config_for(work, db, url, args.rate, args.budget_usd)
            servers = [Server(config, work / f"{name}-{i}.log") for i in range(2)]
            for s in servers:
                s.start()
            bases = [s.base for s in servers]
            row, bound_ok, clean = rate_phase(bases, args.rate, args.rate_s, args.clients,
                                              f"{name} ({'Redis' if url else 'per process'})")
            rate_rows.append(row)
            if url is not None:
                good = good and bound_ok and clean
                budget_row, budget_ok = budget_phase(bases, args.budget_usd, args.clients)
                good = good and budget_ok
                fault_rows, seen, fault_ok = fault_phase(bases, redis, args.outage_s,
                                                         args.clients)
                good = good and fault_ok
            for s in servers:
                s.stop()
            servers = []
        print("\n1. rate: one key on two replicas, 200s in any 60 s")
        print_table(["replicas' state", "seconds", "calls", "statuses", "rate_per_minute",
                     "most 200s in 60 s", "bound (rate + calls in flight)", "within"], rate_rows)
        print("\n2. budget: a team budget on two replicas, the dearest tier forced")
        print_table(["limit USD", "200s", "USD per call", "spent (200s' estimates)",
                     "spent (store)", "overspend in calls", "calls in flight", "statuses",
                     "402 named", "within"], [budget_row])
        print(f"\n3. Redis killed for {args.outage_s:.0f} s mid-run, then started again (empty)")
        print_table(["phase", "calls", "statuses", "5xx"], fault_rows)
        for line in seen:
            print("   " + line)
        print("\nall bounds held, no 5xx" if good else "\nA BOUND DID NOT HOLD (see above)")
        return 0 if good else 1
    finally:
        for s in servers:
            s.stop()
        redis.close()
        pg.stop()


if __name__ == "__main__":
    sys.exit(main())
