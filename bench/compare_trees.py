"""Is /route as fast as on the commit a change started from? Two source trees, interleaved.

    .venv/bin/python bench/compare_trees.py --base /work/wt/base --tree .          # 3 rounds
    .venv/bin/python bench/compare_trees.py --base /work/wt/base --tree /work/wt/base  # noise

Runs `bench/route_bench.py` (this tree's copy) with `--server-root` on each tree, on two configs:

- shipped: the tree's own `router/default_config.yaml`;
- gateway: the same plus what a gateway deployment turns on, so every call pays for it: an API
  key with a rate and a tokens-per-minute limit, a budget over that key, a cap on every run, and
  `shared_state` on a throwaway Redis (tests/redis_server.py; a fresh key prefix per run, so no
  run sees another's windows). The limits are far above what the bench sends: nothing is
  refused, only checked. Every request carries the key and `run_id`.

Each round runs every (config, tree) pair once, base and tree in alternating order (base first
in odd rounds, the tree first in even ones), so a drift of the machine's load over the session
falls on both. The table: per config, workload and concurrency, the median requests/s of each
tree over the rounds, their range (min-max, the noise) and the change of the median; then the
server's CPU milliseconds per request (its CPU time over the run divided by the requests), which
a busy neighbour on a shared machine disturbs far less than requests/s: there, a change in
requests/s without one in CPU per request is the machine, not the code. Compare a change with
the base-vs-base spread of the same session.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness import ROOT, print_table, write_config

sys.path.insert(0, str(ROOT))
from router.guards.auth import hash_key  # noqa: E402
from tests import redis_server  # noqa: E402

KEY = "bench-gateway-key"
RUN_ID = "bench-run"
CORES = os.cpu_count() or 1
BENCH_ARGS = ["--concurrency", "1", "32", "--requests", "400", "--single-requests", "150",
              "--workloads", "short", "agent"]


def gateway_config(tree: Path, out: Path, redis_url: str) -> Path:
    """The tree's shipped config with a limited key, a budget, a run cap and shared_state."""
    key = {"name": "bench", "sha256": hash_key(KEY), "scopes": ["route", "feedback"],
           "rate_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000}
    return write_config(
        tree / "router" / "default_config.yaml", out,
        auth={"keys": [key]},
        budgets=[{"name": "bench-team", "api_keys": ["bench"], "limit_usd": 1_000_000.0}],
        runs={"max_cost_usd": 1_000_000.0},
        shared_state={"url": redis_url, "prefix": f"bench-{uuid.uuid4().hex[:8]}:"},
    )


def bench(tree: Path, config: Path | None, out: Path, extra: list[str]) -> dict[str, Any]:
    """One route_bench.py run against `tree`; its JSON results."""
    command = [sys.executable, str(ROOT / "bench" / "route_bench.py"), "--server-root",
               str(tree), "--out", str(out), *BENCH_ARGS, *extra]
    if config is not None:
        command += ["--config", str(config), "--api-key", KEY, "--run-id", RUN_ID]
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
        raise SystemExit(f"route_bench.py failed ({done.returncode}) on {tree}")
    return dict(json.loads(out.read_text()))


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the tree a change started from")
    parser.add_argument("--tree", type=Path, required=True, help="the tree to compare with it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=["shipped", "gateway"],
                        choices=["shipped", "gateway"])
    parser.add_argument("bench_args", nargs="*",
                        help="more route_bench.py arguments, after `--` (e.g. -- --seed 1)")
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "tree": args.tree.resolve()}
    why = redis_server.why_unavailable() if "gateway" in args.configs else None
    if why is not None:
        print(f"cannot run the gateway config: {why}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="tier-router-compare-"))
    redis = redis_server.start_server() if "gateway" in args.configs else None
    # (config, workload, concurrency) -> tree -> [(req/s, server CPU ms a request)], by round
    results: dict[tuple[str, str, int], dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list))
    try:
        for round_ in range(args.rounds):
            order = ["base", "tree"] if round_ % 2 == 0 else ["tree", "base"]
            for config_name in args.configs:
                for name in order:
                    tree = trees[name]
                    out = work / f"{round_}-{config_name}-{name}.json"
                    config = None
                    if config_name == "gateway":
                        assert redis is not None
                        config = gateway_config(tree, work / f"{round_}-{name}.yaml", redis.url)
                    data = bench(tree, config, out, args.bench_args)
                    column = {h: i for i, h in enumerate(data["headers"])}
                    for row in data["rows"]:
                        key = (config_name, row[column["workload"]], int(row[column["conc"]]))
                        rps = float(row[column["req/s"]])
                        share = float(str(row[column["server CPU"]]).rstrip("%")) / 100
                        results[key][name].append((rps, share * CORES / rps * 1000))
    finally:
        if redis is not None:
            redis.close()
    rows = []
    for (config_name, workload, conc), by_tree in results.items():
        base_rps = [r for r, _ in by_tree["base"]]
        tree_rps = [r for r, _ in by_tree["tree"]]
        base_cpu = statistics.median(c for _, c in by_tree["base"])
        tree_cpu = statistics.median(c for _, c in by_tree["tree"])
        rows.append([config_name, workload, conc,
                     f"{statistics.median(base_rps):.1f}", spread(base_rps),
                     f"{statistics.median(tree_rps):.1f}", spread(tree_rps),
                     f"{statistics.median(tree_rps) / statistics.median(base_rps) - 1:+.1%}",
                     f"{base_cpu:.2f}", f"{tree_cpu:.2f}", f"{tree_cpu / base_cpu - 1:+.1%}"])
    print(f"\nbase {trees['base']} vs tree {trees['tree']}: {args.rounds} interleaved rounds, "
          f"route_bench.py {' '.join(BENCH_ARGS + args.bench_args)}")
    print_table(["config", "workload", "conc", "base req/s", "base range", "tree req/s",
                 "tree range", "change", "base CPU ms/req", "tree CPU ms/req", "change"], rows)
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.1f} on {CORES} cores; "
          f"raw results: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
