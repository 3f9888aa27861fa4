"""Soak: the real server under mixed valid and invalid traffic at several concurrencies.

    .venv/bin/python bench/soak.py --concurrency 1 8 32 --duration 20

Starts `tier-router serve` (the shipped config and model unless --config / --model-dir say
otherwise) on a free loopback port, with three API keys written into a temporary copy of the
config, so auth refusals and a rate-limited key are part of the mix. For each concurrency it
drives traffic for --duration seconds and reports latency percentiles, answers by status, any
*unexpected* answer (a 5xx, or a status the request kind should not get), and the server's
RSS. At the end the server log is checked for errors and for prompt text (there must be none).
Exit status 1 if anything unexpected happened. Client and server share this machine's cores,
so the figures are a floor, not a capacity claim.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from harness import (
    TOPICS,
    Call,
    Kind,
    Server,
    add_common_args,
    agent_body,
    dump,
    percentile,
    print_table,
    prompt,
    write_config,
)

from router.config import load_settings
from router.guards.auth import hash_key

KEYS = {"soak": "soak-route-key", "limited": "soak-limited-key", "bad": "not-a-key"}
LIMITED_RPM = 30


VALID = [("prompt", 50, {200}), ("agent", 20, {200}), ("batch8", 8, {200}), ("tiers", 2, {200})]
INVALID = [("no_key", 2, {401}), ("bad_key", 2, {401}), ("wrong_scope", 1, {403}),
           ("limited_key", 3, {200, 429}), ("bad_quality", 2, {422}), ("no_input", 2, {422}),
           ("unknown_tier", 2, {422}), ("image_part", 1, {422}), ("bad_json", 2, {422}),
           ("bad_utf8", 1, {400}), ("too_many_messages", 1, {422}), ("too_big", 0.3, {422}),
           ("wrong_method", 1, {405})]


def kinds(invalid_share: float) -> list[Kind]:
    """The mix: valid kinds share 1 - invalid_share of the traffic, invalid ones the rest."""
    out = []
    for table, share, valid in ((VALID, 1 - invalid_share, True),
                                (INVALID, invalid_share, False)):
        total = sum(weight for _, weight, _ in table)
        out += [Kind(name, weight * share / total, frozenset(codes), valid)
                for name, weight, codes in table]
    return out


def build(kind: str, rng: random.Random, max_body: int, max_messages: int) -> Call:
    auth = {"Authorization": f"Bearer {KEYS['soak']}"}
    text = {"prompt": prompt(rng)}
    calls: dict[str, Any] = {
        "prompt": lambda: Call("POST", "/route", text, headers=auth),
        "agent": lambda: Call("POST", "/route", agent_body(rng), headers=auth),
        "batch8": lambda: Call("POST", "/route/batch",
                               {"requests": [{"prompt": prompt(rng)} for _ in range(8)]},
                               headers=auth),
        "tiers": lambda: Call("GET", "/tiers", headers=auth),
        "no_key": lambda: Call("POST", "/route", text),
        "bad_key": lambda: Call("POST", "/route", text, headers={"X-API-Key": KEYS["bad"]}),
        "wrong_scope": lambda: Call("POST", "/admin/reload", headers=auth),
        "limited_key": lambda: Call("POST", "/route", text,
                                    headers={"Authorization": f"Bearer {KEYS['limited']}"}),
        "bad_quality": lambda: Call("POST", "/route", {**text, "quality_target": 2}, headers=auth),
        "no_input": lambda: Call("POST", "/route", {}, headers=auth),
        "unknown_tier": lambda: Call("POST", "/route", {**text, "tier": "huge"}, headers=auth),
        "image_part": lambda: Call("POST", "/route", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "x"}}]}]}, headers=auth),
        "bad_json": lambda: Call("POST", "/route", content=b'{"prompt": ', headers=auth),
        "bad_utf8": lambda: Call("POST", "/route", content=b'{"prompt": "\xff\xfe"}',
                                 headers=auth),
        "too_many_messages": lambda: Call("POST", "/route", {"messages": [
            {"role": "user", "content": "hi"}] * (max_messages + 1)}, headers=auth),
        "too_big": lambda: Call("POST", "/route", content=b" " * (max_body + 1), headers=auth),
        "wrong_method": lambda: Call("GET", "/route", headers=auth),
    }
    call: Call = calls[kind]()
    if call.method == "POST":  # every POST is JSON, a bodyless one too
        call.headers = {**call.headers, "Content-Type": "application/json"}
    return call


async def drive(base: str, concurrency: int, duration: float, mix: list[Kind], seed: int,
                limits: tuple[int, int]) -> list[tuple[str, int, float, str]]:
    """(kind, status or -1 for a transport error, seconds, decision reason) per request."""
    results: list[tuple[str, int, float, str]] = []
    deadline = time.monotonic() + duration
    names, weights = [k.name for k in mix], [k.weight for k in mix]
    pool = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=pool) as client:

        async def worker(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            while time.monotonic() < deadline:
                name = rng.choices(names, weights)[0]
                call = build(name, rng, *limits)
                started = time.perf_counter()
                reason = ""
                try:
                    r = await client.request(call.method, call.path, json=call.json_body,
                                             content=call.content, headers=call.headers)
                    status = r.status_code
                    if status == 200 and call.path == "/route":
                        reason = str(r.json().get("reason", ""))
                except httpx.HTTPError:
                    status = -1
                results.append((name, status, time.perf_counter() - started, reason))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return results


def summarise(concurrency: int, results: list[tuple[str, int, float, str]], mix: list[Kind],
              duration: float, rss: tuple[float, float]) -> dict[str, Any]:
    """A healthy model should never degrade, so a degraded decision counts as unexpected."""
    expected = {k.name: k.expected for k in mix}
    single = [t * 1000 for name, s, t, _ in results if name in ("prompt", "agent") and s == 200]
    statuses = Counter(s for _, s, _, _ in results)
    unexpected = Counter(f"{name}->{s}" for name, s, _, _ in results if s not in expected[name])
    unexpected.update(f"{name}->degraded" for name, _, _, why in results if why == "degraded")
    reasons = Counter(why for _, _, _, why in results if why)
    return {
        "concurrency": concurrency, "requests": len(results),
        "rps": len(results) / duration, "route_ok": len(single),
        "p50_ms": percentile(single, 50), "p90_ms": percentile(single, 90),
        "p99_ms": percentile(single, 99), "max_ms": max(single, default=float("nan")),
        "statuses": dict(statuses), "reasons": dict(reasons), "unexpected": dict(unexpected),
        "rss_before_mb": rss[0], "rss_after_mb": rss[1],
    }


def check_log(log_path: Path) -> dict[str, Any]:
    text = log_path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return {"lines": len(lines),
            "errors": sum('"level": "ERROR"' in ln for ln in lines),
            "prompt_text_lines": sum(any(t in ln for t in TOPICS) for ln in lines),
            "decision_lines": sum('"msg": "decision"' in ln for ln in lines),
            "graceful_shutdown": "Application shutdown complete" in text}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, "override model_dir")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency")
    parser.add_argument("--invalid-share", type=float, default=0.2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tier-router-soak-"))
    keys = [{"name": "soak", "sha256": hash_key(KEYS["soak"]), "scopes": ["route"]},
            {"name": "limited", "sha256": hash_key(KEYS["limited"]), "scopes": ["route"],
             "rate_per_minute": LIMITED_RPM}]
    changes: dict[str, Any] = {"auth": {"keys": keys},
                               "store": {"url": f"sqlite:///{work / 'traces.db'}"}}
    if args.model_dir is not None:
        changes["model_dir"] = str(args.model_dir.resolve())
    config = write_config(args.config, work / "config.yaml", **changes)
    settings = load_settings(config, environ={})
    limits = (settings.limits.max_body_bytes, settings.limits.max_messages)
    mix = kinds(args.invalid_share)

    server = Server(config, work / "server.log")
    ready = server.start()
    print(f"server {server.base} pid {server.proc.pid if server.proc else '?'}; "
          f"model {settings.model_dir}; ready: {ready}")
    rows: list[dict[str, Any]] = []
    try:
        asyncio.run(drive(server.base, 2, 3.0, mix, args.seed, limits))  # warm-up
        rss_start = server.rss_mb()
        for level in args.concurrency:
            before = server.rss_mb()
            results = asyncio.run(drive(server.base, level, args.duration, mix, args.seed + level,
                                        limits))
            rows.append(summarise(level, results, mix, args.duration, (before, server.rss_mb())))
    finally:
        server.stop()
    log = check_log(work / "server.log")

    print(f"\nsoak: {args.duration:.0f} s per level, {args.invalid_share:.0%} invalid traffic; "
          "latency = valid single /route calls answered 200 (ms)")
    print_table(["conc", "requests", "req/s", "p50", "p90", "p99", "max", "by status",
                 "/route reasons", "unexpected", "RSS MB before", "after"],
                [[r["concurrency"], r["requests"], r["rps"], r["p50_ms"], r["p90_ms"],
                  r["p99_ms"], r["max_ms"], r["statuses"], r["reasons"], r["unexpected"] or "-",
                  r["rss_before_mb"], r["rss_after_mb"]] for r in rows])
    rss_end = rows[-1]["rss_after_mb"] if rows else float("nan")
    print(f"\nRSS after warm-up {rss_start:.1f} MB -> end {rss_end:.1f} MB "
          f"({rss_end - rss_start:+.1f} MB); graceful shutdown: {log['graceful_shutdown']}")
    print(f"server log: {log['lines']} lines, {log['decision_lines']} decision lines, "
          f"{log['errors']} ERROR lines, {log['prompt_text_lines']} lines with prompt text "
          f"({work / 'server.log'})")
    if args.out:
        dump(args.out, {"rows": rows, "log": log, "rss_start_mb": rss_start, "ready": ready})
    bad = any(r["unexpected"] for r in rows) or log["prompt_text_lines"] > 0
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
