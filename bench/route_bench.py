"""How fast is POST /route? The real server against the bare encoder, on the same texts.

    .venv/bin/python bench/route_bench.py                      # shipped config and model
    .venv/bin/python bench/route_bench.py --requests 400 --concurrency 1 32   # a quick look

Starts `tier-router serve` (the server tree's shipped config, or --config, always with a private
trace store; the shipped model unless --model-dir says otherwise) on a free loopback port and
times start-up to ready. It then times the bare encoder in this process on the texts the service
will encode (the classifier's view of each request), at several batch sizes, and keeps the best
throughput. Then, for each concurrency, it sends a bounded number of requests of each shape
drawn from the shared data:

- short: a prompt under 300 characters;
- long: a prompt over 1,000 characters (few-shot benchmark prompts, long instructions);
- agent: a long system prompt, six tool schemas, a prompt of up to 1,000 characters, a tool
  call and its result;
- repeated (concurrency 32 only): 64 short prompts sent over and over (embedding cache hits);
- 200k-token (concurrency 1 only): an agent call carrying a ~800,000-character context.

--api-key sends a key (Authorization: Bearer) on every /route call, for a config with auth
keys; --run-id puts that run_id on every request (without it only agent requests carry one,
"bench"), so a config's run caps and shared state are exercised on every call.

Every request text is used once (except the repeated run), so the cache does not flatter the
numbers. The load generator is a minimal keep-alive HTTP/1.1 client on asyncio, one connection
per concurrent caller, so it takes little of the two cores it shares with the server.

The table: latency percentiles (client side, ms), requests/s, the bare encoder's best
texts/s on the same texts and the service/encoder ratio, the cache hit rate of that run, the
share of all cores the load generator and the server each used (the client shares the machine,
so what it takes bounds the ratio), the share of all cores the server's threads spent ready to
run but waiting for one (the run queue, summed over its threads, so it can pass 100%: on a
shared machine, what the neighbours took; a server neither busy nor waiting there is waiting on
itself), and the server's RSS; then the
peak RSS (VmHWM) and the start-up time.
Traffic only goes to
127.0.0.1, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import ROOT, SYSTEM, TOOLS, Server, dump, metric, percentile, print_table, write_config

from router.config import EmbedderConfig, load_settings
from router.decision.features import view_of
from router.schemas import RouteRequest

SHORT_CHARS, LONG_CHARS = 300, 1000
REPEATED_DISTINCT = 64
HUGE_CHARS = 800_000  # about 200k tokens at 4 characters a token
BARE_BATCHES = (1, 8, 32, 64)


@dataclass
class Workload:
    """Request bodies of one shape, and the texts the classifier will see for them."""

    name: str
    bodies: list[bytes]
    texts: list[str]


@dataclass
class Run:
    workload: str
    concurrency: int
    latencies: list[float]
    statuses: Counter[int]
    seconds: float
    hit_rate: float
    rss_mb: float
    client_cpu: float = float("nan")  # share of all cores the load generator used
    server_cpu: float = float("nan")  # share of all cores the server used
    server_wait: float = float("nan")  # share of all cores its threads waited for (run queue)


# ---- data -------------------------------------------------------------------------------------

def load_prompts(data_dir: Path, seed: int) -> list[str]:
    """Distinct prompts of the shared data (all splits), shuffled."""
    from training.ingest import load_public

    frame = load_public(data_dir).drop_duplicates("prompt_id")
    prompts = sorted(set(frame["prompt"].astype(str)))
    random.Random(seed).shuffle(prompts)
    return prompts


def agent_messages(prompt: str, context: str = "") -> dict[str, Any]:
    """An agent's step: system prompt, tools, the task, one tool call and its result."""
    return {"messages": [
        {"role": "system", "content": SYSTEM + context},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "tool_1", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "status: ok; 3 records found"},
    ], "tools": TOOLS, "task": "act", "run_id": "bench", "role": "worker"}


class Drawer:
    """Hands out request bodies whose classifier texts were never used before in this run."""

    def __init__(self, prompts: list[str]):
        self.prompts = prompts
        self.used_texts: set[str] = set()
        self.position = 0

    def draw(self, name: str, n: int, keep: Any, shape: Any) -> Workload:
        bodies, texts = [], []
        while len(bodies) < n and self.position < len(self.prompts):
            prompt = self.prompts[self.position]
            self.position += 1
            if not keep(prompt):
                continue
            body = shape(prompt)
            request = RouteRequest.model_validate(body)
            text = view_of(request.chat(), request.tools).text
            if text in self.used_texts:
                continue
            self.used_texts.add(text)
            bodies.append(json.dumps(body).encode())
            texts.append(text)
        if len(bodies) < n:
            print(f"note: only {len(bodies)} distinct {name} requests (asked for {n})")
        return Workload(name, bodies, texts)


def short(p: str) -> bool:
    return len(p) < SHORT_CHARS


def long(p: str) -> bool:
    return len(p) > LONG_CHARS


def not_long(p: str) -> bool:
    return len(p) <= LONG_CHARS


# ---- load generator ---------------------------------------------------------------------------

Driven = tuple[list[float], Counter[int], float]


API_KEY: str | None = None  # --api-key: sent on every /route call


async def drive(port: int, bodies: Sequence[bytes], concurrency: int) -> Driven:
    """Send every body once over `concurrency` keep-alive connections; latencies in seconds."""
    auth = b"" if API_KEY is None else b"Authorization: Bearer %s\r\n" % API_KEY.encode()
    requests = [b"POST /route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"%sContent-Length: %d\r\n\r\n%s" % (auth, len(b), b) for b in bodies]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    queue = iter(requests)

    async def caller() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw in queue:
                started = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[int(head[9:12])] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(min(concurrency, len(requests)))))
    return latencies, statuses, time.perf_counter() - started


def cache_counts(base: str) -> tuple[float, float]:
    """(decisions so far, cumulative cache hit rate) from /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return (metric(text, "tier_router_decisions_total"),
            metric(text, "tier_router_embedding_cache_hit_rate"))


def measure(server: Server, workload: Workload, concurrency: int, runner: Any) -> Run:
    n0, r0 = cache_counts(server.base)
    client0, server0 = time.process_time(), server.cpu_seconds()
    wait0 = server.cpu_wait_seconds()
    latencies, statuses, seconds = runner(drive(server.port, workload.bodies, concurrency))
    client1, server1 = time.process_time(), server.cpu_seconds()
    wait1 = server.cpu_wait_seconds()
    n1, r1 = cache_counts(server.base)
    hit_rate = (r1 * n1 - r0 * n0) / (n1 - n0) if n1 > n0 else float("nan")
    cores = seconds * (os.cpu_count() or 1)
    return Run(workload.name, concurrency, latencies, statuses, seconds, hit_rate,
               server.rss_mb(), (client1 - client0) / cores, (server1 - server0) / cores,
               (wait1 - wait0) / cores)


# ---- the bare encoder -------------------------------------------------------------------------

def bare_encoder(config: EmbedderConfig) -> Any:
    """The service's backend without its cache, built from the same config and thread plan."""
    from router.decision.encoders.backends import make_embedder
    from router.serving.threads import limit_native_threads

    limit_native_threads()
    return make_embedder(config.model_copy(update={"cache_size": 0}))


def bare_throughput(encoder: Any, texts: Sequence[str], limit: int) -> tuple[float, int]:
    """(best texts/s, at batch size) over BARE_BATCHES, on up to `limit` of the texts."""
    texts = list(texts[:limit])
    encoder.encode(texts[:8])  # warm
    best = (0.0, 0)
    for size in BARE_BATCHES:
        started = time.perf_counter()
        for i in range(0, len(texts), size):
            encoder.encode(texts[i:i + size])
        rate = len(texts) / (time.perf_counter() - started)
        best = max(best, (rate, size))
    return best


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (VmHWM), which sampling could miss."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- report -----------------------------------------------------------------------------------

def row(run: Run, bare: dict[str, tuple[float, int]]) -> list[Any]:
    ms = [t * 1000 for t in run.latencies]
    rps = len(run.latencies) / run.seconds
    enc = bare.get(run.workload)
    errors = sum(c for s, c in run.statuses.items() if s != 200)
    return [run.workload, run.concurrency, len(run.latencies), errors,
            f"{percentile(ms, 50):.2f}", f"{percentile(ms, 95):.2f}", f"{percentile(ms, 99):.2f}",
            rps, f"{enc[0]:.0f} @{enc[1]}" if enc else "-",
            f"{rps / enc[0]:.2f}" if enc else "-",
            f"{run.hit_rate:.2f}", f"{run.client_cpu:.0%}", f"{run.server_cpu:.0%}",
            f"{run.server_wait:.0%}", run.rss_mb]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--requests", type=int, default=1000, help="per run (c > 1)")
    parser.add_argument("--single-requests", type=int, default=300, help="per run at c = 1")
    parser.add_argument("--long-share", type=float, default=0.4,
                        help="long runs send this share of --requests (they are slow)")
    parser.add_argument("--config", type=Path, default=None,
                        help="base config (default: the server tree's shipped config); the "
                             "trace store is always a private one")
    parser.add_argument("--api-key", default=None,
                        help="send this key (Authorization: Bearer) on every /route call")
    parser.add_argument("--run-id", default=None,
                        help="put this run_id on every request (default: agent ones only)")
    parser.add_argument("--server-root", type=Path, default=ROOT,
                        help="source tree the server runs from (to bench an older commit)")
    parser.add_argument("--batch-wait-ms", type=float, default=None,
                        help="override embedder.batch_wait_ms (default: the config's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override embedder.batch_size (default: the config's)")
    parser.add_argument("--int8-recipe", default=None,
                        help="override embedder.int8_recipe (default: the config's)")
    parser.add_argument("--workloads", nargs="+", default=["short", "long", "agent"],
                        choices=["short", "long", "agent"], help="a subset, for a quick look")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args()
    runner = _runner()
    global API_KEY
    API_KEY = args.api_key
    base = args.config
    if base is None and (args.server_root / "router" / "default_config.yaml").exists():
        base = args.server_root / "router" / "default_config.yaml"  # the tree's own schema
    run_id = args.run_id

    def plain(p: str) -> dict[str, Any]:
        return {"prompt": p} if run_id is None else {"prompt": p, "run_id": run_id}

    def agent(p: str, context: str = "") -> dict[str, Any]:
        body = agent_messages(p, context)
        return body if run_id is None else {**body, "run_id": run_id}

    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tier-router-bench-"))
    changes: dict[str, Any] = {"store": {"url": f"sqlite:///{work / 'traces.db'}"}}
    if args.model_dir is not None:
        changes["model_dir"] = str(args.model_dir.resolve())
    embedder = {k: v for k, v in (("batch_wait_ms", args.batch_wait_ms),
                                  ("batch_size", args.batch_size),
                                  ("int8_recipe", args.int8_recipe)) if v is not None}
    if embedder:
        changes["embedder"] = load_settings(base, environ={}).embedder.model_copy(
            update=embedder).model_dump(mode="json", exclude_none=True)
    config = write_config(base, work / "config.yaml", **changes)
    settings = load_settings(config, environ={})

    drawer = Drawer(load_prompts(args.data_dir, args.seed))
    warm = drawer.draw("warm-up", 100, short, plain)
    runs_of: dict[str, list[tuple[int, Workload]]] = {"short": [], "long": [], "agent": []}
    for level in args.concurrency:
        n = args.single_requests if level == 1 else args.requests
        runs_of["short"].append((level, drawer.draw("short", n, short, plain)))
        runs_of["long"].append((level, drawer.draw("long", max(1, int(n * args.long_share)),
                                                   long, plain)))
        runs_of["agent"].append((level, drawer.draw("agent", n, not_long, agent)))
    repeated = drawer.draw("repeated", REPEATED_DISTINCT, short, plain)
    huge = drawer.draw("200k-token", 20, short, lambda p: agent(
        p, context=(" ".join(["lorem ipsum dolor sit amet"] * (HUGE_CHARS // 27)))))

    server = Server(config, work / "server.log", root=args.server_root)
    started = time.perf_counter()
    ready = server.start()
    startup = time.perf_counter() - started
    assert server.proc is not None
    print(f"server pid {server.proc.pid} ready in {startup:.2f} s: {ready}", flush=True)
    try:
        encoder = bare_encoder(settings.embedder)
        bare = {name: bare_throughput(encoder, [t for _, w in runs_of[name] for t in w.texts], 512)
                for name in args.workloads}
        del encoder
        runner(drive(server.port, warm.bodies, 8))
        results = []
        for level in args.concurrency:
            for name in args.workloads:
                workload = dict(runs_of[name])[level]
                if not workload.bodies:
                    continue
                results.append(measure(server, workload, level, runner))
                print(" ".join(map(str, row(results[-1], bare))), flush=True)
        runner(drive(server.port, repeated.bodies, 8))  # every text cached once
        cycle = repeated.bodies * (args.requests // max(1, len(repeated.bodies)) + 1)
        results.append(measure(server, Workload("repeated", cycle[:args.requests], []), 32,
                               runner))
        results.append(measure(server, huge, 1, runner))
        peak = peak_rss_mb(server.proc.pid)
    finally:
        server.stop()
    load_after = os.getloadavg()[0]

    emb = settings.embedder
    recipe = f" ({emb.int8_recipe})" if emb.backend == "onnx-int8" else ""
    print(f"\nroute bench: {emb.backend}{recipe}, {emb.threads} threads, "
          f"batch {settings.embedder.batch_size} / {settings.embedder.batch_wait_ms} ms, "
          f"model {settings.model_dir.name}, server tree {args.server_root}, "
          f"config {base or 'shipped'}, api key {'yes' if API_KEY else 'no'}, "
          f"run_id {run_id or 'agent only'}")
    headers = ["workload", "conc", "n", "errors", "p50 ms", "p95 ms", "p99 ms", "req/s",
               "bare enc/s @batch", "svc/enc", "cache hit", "client CPU", "server CPU",
               "server CPU wait", "RSS MB"]
    print_table(headers, [row(r, bare) for r in results])
    print(f"\nstart-up to ready: {startup:.2f} s; peak RSS (VmHWM) {peak:.0f} MB; "
          f"load average after: {load_after:.2f}; server log {work / 'server.log'}")
    if args.out:
        dump(args.out, {"startup_s": startup, "peak_rss_mb": peak, "headers": headers,
                        "rows": [row(r, bare) for r in results],
                        "bare": bare, "load_after": load_after})
    return 0 if all(set(r.statuses) == {200} for r in results) else 1


def _runner() -> Any:
    """uvloop's runner when it is installed (a lighter client), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


if __name__ == "__main__":
    sys.exit(main())
