"""What one /route decision costs in Python once the encoder is out of the way: two source
trees, interleaved, the service called in-process on prompts whose embeddings are cached.

    .venv/bin/python bench/route_inprocess.py --base /work/wt/base --tree .
    .venv/bin/python bench/route_inprocess.py --tree .            # this tree alone

HTTP benches (bench/route_bench.py, bench/compare_trees.py) see this cost only on the cache-hit
workload, under the server's HTTP and JSON work; here it stands alone. Each tree runs in its own
process (its own `router` package first on the path) with its shipped config and model and a
private SQLite store: the service's `route()` on `--distinct` prompts called over and over, once
without and once with a `task` name (a learned-map category). The figure is the process's CPU
microseconds per call over all its threads, the trace-store writer's inserts included (the
queue is flushed before the clock stops), and the wall time beside it. Rounds alternate which
tree goes first; the table gives each tree's median over the rounds and its range.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import ROOT, print_table

WORKLOADS = ("cached", "cached+task")


def worker(tree: Path, calls: int, distinct: int) -> dict[str, dict[str, float]]:
    """In this process: the tree's service, measured on each workload."""
    sys.path.insert(0, str(tree))
    import yaml
    from fastapi.testclient import TestClient

    from router.api.app import create_app
    from router.schemas import RouteRequest

    work = Path(tempfile.mkdtemp(prefix="tier-router-inprocess-"))
    raw = yaml.safe_load((tree / "router" / "default_config.yaml").read_text())
    raw["model_dir"] = str(tree / "models" / "default")
    raw["store"] = {**raw.get("store", {}), "url": f"sqlite:///{work / 'traces.db'}"}
    (work / "config.yaml").write_text(yaml.safe_dump(raw))
    app = create_app(work / "config.yaml")
    prompts = [f"summarise the meeting notes number {i} for the team" for i in range(distinct)]
    out: dict[str, dict[str, float]] = {}
    with TestClient(app):
        service = app.state.holder.service
        store = service.recorders[0].store
        for workload in WORKLOADS:
            task = "summarise" if workload.endswith("+task") else None
            requests = [RouteRequest(prompt=p, task=task) for p in prompts]
            for request in requests:  # every prompt embedded once
                service.route([request])
            store.flush(timeout=30)
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(calls):
                service.route([requests[i % distinct]])
            store.flush(timeout=30)
            out[workload] = {"cpu_us": (time.process_time() - cpu) / calls * 1e6,
                             "wall_us": (time.perf_counter() - wall) / calls * 1e6}
    return out


def run_tree(tree: Path, calls: int, distinct: int) -> dict[str, dict[str, float]]:
    """One worker process on `tree`; its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(tree), "--calls", str(calls),
         "--distinct", str(distinct)],
        capture_output=True, text=True, check=False, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"worker on {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--base", type=Path, default=None, help="a second tree to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=6000, help="per workload and run")
    parser.add_argument("--distinct", type=int, default=64, help="distinct prompts")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker.resolve(), args.calls, args.distinct)))
        return
    trees = {"tree": args.tree.resolve()}
    if args.base is not None:
        trees = {"base": args.base.resolve(), **trees}
    runs: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
        for name in order:
            runs[name].append(run_tree(trees[name], args.calls, args.distinct))
            print(f"round {round_ + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
    print(f"\n{args.calls} calls per workload and run, {args.distinct} distinct prompts, "
          f"{args.rounds} rounds; " + ", ".join(f"{n} {p}" for n, p in trees.items()))
    headers = ["workload", "measure"]
    for name in trees:
        headers += [f"{name} median us", f"{name} range"]
    if "base" in trees:
        headers.append("change")
    rows: list[list[Any]] = []
    for workload in WORKLOADS:
        for measure in ("cpu_us", "wall_us"):
            row: list[Any] = [workload, measure.replace("_us", "")]
            medians = {}
            for name in trees:
                values = [r[workload][measure] for r in runs[name]]
                medians[name] = statistics.median(values)
                row += [round(medians[name], 1), f"{min(values):.0f}-{max(values):.0f}"]
            if "base" in trees:
                row.append(f"{medians['tree'] / medians['base'] - 1:+.1%}")
            rows.append(row)
    print_table(headers, rows)


if __name__ == "__main__":
    main()
