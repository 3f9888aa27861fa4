"""Can polling GET /runs starve POST /feedback? One real server, 30,000 live runs, one run.

The trace store is seeded with `--runs` live runs of the agents' own key (one call each,
spread over the last hour: all live), then a real `tier-router serve` starts on it. Agents
route a call and post its outcome in a loop; only the /feedback answer is timed. The two
conditions alternate in `--blocks` blocks each, in one server, so that the machine's drift
(other work on it) falls on both alike:

  quiet      the agents alone;
  polled     the agents while `--pollers` clients poll `GET /runs?limit=50` with the same
             key (route scope: what any agent key may do), each every `--poll-interval` s
             (0: as fast as answers come back).

It prints /feedback p50/p95/p99 per condition (all its blocks together) and per block, the
/runs latency and count, and p99(polled) / p99(quiet) against the 1.10 the issue asks for.
Traffic only to 127.0.0.1.

    .venv/bin/python bench/starvation.py                      # ~2-3 min
    .venv/bin/python bench/starvation.py --poll-interval 0    # pollers as fast as they can
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Server, add_common_args, dump, percentile, print_table, prompt, write_config  # noqa: E402, I001

AGENT_KEY, AGENT_NAME = "bench-agent-key", "agents"
JSON = {"Content-Type": "application/json"}


def seed_runs(db: Path, runs: int, key_name: str, rng: random.Random) -> None:
    """`runs` live runs of `key_name`, one decision each in the last hour, written as the
    store writes them (its own row format and insert)."""
    from router.config import StoreConfig
    from router.decision.features import view_of
    from router.schemas import RouteDecision, RouteRequest
    from router.traces.db import insert_sql
    from router.traces.rows import DECISION_COLUMNS, PendingDecision
    from router.traces.store import TraceStore

    store = TraceStore(StoreConfig(url=f"sqlite:///{db}")).open()
    config, now, rows = StoreConfig(), time.time(), []
    for i in range(runs):
        request = RouteRequest(prompt=f"seeded call {i}", run_id=f"seed-{i}", role="worker",
                               step="s1").attribute_to(key_name)
        decision = RouteDecision(
            decision_id=uuid.uuid4().hex, tier="small", model="gpt-4.1-nano",
            fallbacks=["gemini-2.0-flash-001"], scores={"small": 0.8}, reason="classifier",
            estimated_tokens_in=10, estimated_cost_usd=0.0001, router_version="seed")
        at = now - rng.uniform(0, 3600)
        rows.append(PendingDecision(request, decision, view_of(request.chat()), at).row(config))
    sql = store.db.sql(insert_sql("decisions", DECISION_COLUMNS, "decision_id"))
    conn = store.db.connect("writer")
    conn.cursor().executemany(sql, rows)
    conn.commit()
    conn.close()
    store.close()


async def agent(http: httpx.AsyncClient, rng: random.Random, stop: asyncio.Event,
                times: list[float], errors: list[int]) -> None:
    """Route a call, then post its outcome; time the /feedback answer only."""
    headers = {"X-API-Key": AGENT_KEY}
    while not stop.is_set():
        body = {"prompt": prompt(rng), "run_id": f"live-{rng.randrange(10**9)}"}
        r = await http.post("/route", json=body, headers=headers)
        if r.status_code != 200:
            errors.append(r.status_code)
            continue
        outcome = {"decision_id": r.json()["decision_id"], "success": True, "tokens_in": 80,
                   "tokens_out": 120, "latency_ms": 900.0}
        started = time.perf_counter()
        fb = await http.post("/feedback", json=outcome, headers=headers)
        elapsed = time.perf_counter() - started
        if fb.status_code in (200, 201):
            times.append(elapsed * 1000)
        else:
            errors.append(fb.status_code)


async def poller(http: httpx.AsyncClient, interval: float, stop: asyncio.Event,
                 times: list[float], errors: list[int]) -> None:
    headers = {"X-API-Key": AGENT_KEY}
    while not stop.is_set():
        started = time.perf_counter()
        r = await http.get("/runs", params={"limit": 50}, headers=headers)
        elapsed = time.perf_counter() - started
        if r.status_code == 200 and len(r.json()["runs"]) == 50:
            times.append(elapsed * 1000)
        else:
            errors.append(r.status_code)
        if interval > 0:
            await asyncio.sleep(max(0.0, interval - elapsed))


async def phase(base: str, agents: int, feedbacks: int, pollers: int, interval: float,
                seed: int) -> dict[str, Any]:
    """Run agents until `feedbacks` outcomes were timed, with `pollers` polling meanwhile."""
    limits = httpx.Limits(max_connections=agents + pollers + 2)
    fb_times: list[float] = []
    run_times: list[float] = []
    fb_errors: list[int] = []
    run_errors: list[int] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits,
                                 headers=JSON) as http:
        tasks = [asyncio.create_task(agent(http, random.Random(seed * 100 + i), stop, fb_times,
                                           fb_errors)) for i in range(agents)]
        tasks += [asyncio.create_task(poller(http, interval, stop, run_times, run_errors))
                  for _ in range(pollers)]
        started = time.monotonic()
        while len(fb_times) < feedbacks and time.monotonic() - started < 600:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
    return {"feedback_ms": fb_times[:feedbacks], "runs_ms": run_times,
            "feedback_errors": fb_errors, "runs_errors": run_errors,
            "seconds": time.monotonic() - started}


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: [v for r in results for v in r[k]] for k in
            ("feedback_ms", "runs_ms", "feedback_errors", "runs_errors")}


def summary(name: str, result: dict[str, Any]) -> list[Any]:
    fb, runs = result["feedback_ms"], result["runs_ms"]
    return [name, len(fb), percentile(fb, 50), percentile(fb, 95), percentile(fb, 99),
            len(runs), percentile(runs, 50) if runs else "-", percentile(runs, 99) if runs else "-",
            len(result["feedback_errors"]) + len(result["runs_errors"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, "model directory (default: the shipped one)")
    parser.add_argument("--runs", type=int, default=30_000, help="live runs seeded")
    parser.add_argument("--agents", type=int, default=2, help="route+feedback clients")
    parser.add_argument("--feedbacks", type=int, default=1000,
                        help="timed outcomes per condition")
    parser.add_argument("--blocks", type=int, default=5,
                        help="alternating blocks per condition")
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=0.5,
                        help="seconds between one poller's requests (0: back to back)")
    args = parser.parse_args(argv)

    from router.guards.auth import hash_key

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tier-router-starvation-") as tmp:
        work = Path(tmp)
        db = work / "traces.db"
        began = time.monotonic()
        seed_runs(db, args.runs, AGENT_NAME, rng)
        print(f"seeded {args.runs} live runs in {time.monotonic() - began:.1f} s")
        keys = [{"name": AGENT_NAME, "sha256": hash_key(AGENT_KEY), "scopes": ["route",
                                                                             "feedback"]}]
        changes: dict[str, Any] = {"store": {"url": f"sqlite:///{db}"}, "auth": {"keys": keys},
                                   "exploration_rate": 0.0}
        if args.model_dir is not None:
            changes["model_dir"] = str(args.model_dir.resolve())
        config = write_config(args.config, work / "config.yaml", **changes)
        server = Server(config, work / "server.log")
        print("ready:", server.start())
        try:
            blocks = []
            for i in range(args.blocks):
                for name, pollers in (("quiet", 0), ("polled", args.pollers)):
                    result = asyncio.run(phase(server.base, args.agents,
                                               args.feedbacks // args.blocks, pollers,
                                               args.poll_interval, args.seed * 1000 + i))
                    blocks.append((f"{name} {i + 1}", name, result))
        finally:
            server.stop()
    results = {name: merged([r for _, n, r in blocks if n == name])
               for name in ("quiet", "polled")}
    print(f"\n/feedback with {args.runs} live runs; {args.agents} agents; "
          f"{args.pollers} pollers of GET /runs?limit=50 every {args.poll_interval:g} s "
          "in the polled blocks")
    headers = ["condition", "feedbacks", "p50 ms", "p95 ms", "p99 ms", "/runs", "/runs p50 ms",
               "/runs p99 ms", "errors"]
    print_table(headers, [summary(n, r) for n, r in results.items()])
    print("\nper block:")
    print_table(headers, [summary(label, r) for label, _, r in blocks])
    quiet = percentile(results["quiet"]["feedback_ms"], 99)
    polled = percentile(results["polled"]["feedback_ms"], 99)
    print(f"\np99 polled / p99 quiet: {polled / quiet:.3f} "
          f"(target <= 1.10: {'met' if polled <= 1.10 * quiet else 'NOT met'})")
    block_p99 = {name: statistics.median(percentile(r["feedback_ms"], 99)
                                         for _, n, r in blocks if n == name)
                 for name in ("quiet", "polled")}
    print(f"median of the blocks' p99: quiet {block_p99['quiet']:.1f} ms, polled "
          f"{block_p99['polled']:.1f} ms, ratio {block_p99['polled'] / block_p99['quiet']:.3f} "
          "(one slow block moves the pooled p99; the median of blocks shows whether it is "
          "the polling or the machine)")
    if args.out is not None:
        dump(args.out, {"args": vars(args), "results": results, "ratio": polled / quiet,
                        "blocks": [(label, r) for label, _, r in blocks]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
