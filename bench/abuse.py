"""Replay the hostile requests of the "one key cannot hurt another" issue against real servers
and print what got through.

Two `tier-router serve` processes on loopback, shipped config and model: one with keys, a
budget, per-key limits and model health (the keyed server), one with no keys (open mode).
Each hostile request is sent as a caller would send it; the answer, and what other keys then
see, decide "held" or "GOT THROUGH". Nothing here fixes anything: it only reports.

    .venv/bin/python bench/abuse.py          # ~1 min; exit status 1 if anything got through
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Server, add_common_args, dump, write_config  # noqa: E402, I001
from tests.integration.service import send_huge_header  # noqa: E402

JSON = {"Content-Type": "application/json"}
KEYS = {  # name -> (key, scopes, limits)
    "fbonly": ("abuse-fbonly", ["feedback"], {}),
    "mallory": ("abuse-mallory", ["route", "feedback"], {}),
    "victim": ("abuse-victim", ["route", "feedback"], {}),
    "admin": ("abuse-admin", ["admin", "route", "feedback", "metrics"], {}),
    "tpm": ("abuse-tpm", ["route", "feedback"], {"tokens_per_minute": 5000}),
    "tpm2": ("abuse-tpm2", ["route", "feedback"], {"tokens_per_minute": 5000}),
    "rpm": ("abuse-rpm", ["route"], {"rate_per_minute": 30}),
}
LARGE = ["gpt-4.1", "claude-3-7-sonnet-20250219"]


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[name][0], **JSON}


class Report:
    """One line per hostile request: what was sent, what came back, held or got through."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def check(self, item: str, what: str, through: bool, answer: str) -> None:
        self.rows.append({"item": item, "what": what, "through": through, "answer": answer})
        mark = "GOT THROUGH" if through else "held"
        print(f"[{item:>2}] {mark:<11} {what}\n              -> {answer}", flush=True)

    def attempt(self, item: str, what: str, probe: Callable[[], tuple[bool, str]]) -> None:
        try:
            through, answer = probe()
        except Exception as exc:  # noqa: BLE001 - a probe that breaks is reported, not fatal
            through, answer = True, f"the probe failed: {type(exc).__name__}: {exc}"
        self.check(item, what, through, answer)


def short(r: httpx.Response) -> str:
    return f"{r.status_code} {r.text[:160]}"


def keyed_config(work: Path, base: Path | None) -> Path:
    from router.guards.auth import hash_key

    keys = [{"name": n, "sha256": hash_key(k), "scopes": s, **lim}
            for n, (k, s, lim) in KEYS.items()]
    return write_config(
        base, work / "keyed.yaml", store={"url": f"sqlite:///{work / 'keyed.db'}"},
        auth={"keys": keys, "public_docs": False, "public_metrics": False},
        budgets=[{"name": "solver-budget", "role": "solver", "limit_usd": 5.0,
                  "period": "day"}],
        health={"min_calls": 3, "cooldown_s": 60, "window_s": 120}, exploration_rate=0.0)


def route(http: httpx.Client, who: str, **body: Any) -> httpx.Response:
    return http.post("/route", json={"prompt": "Summarise the French revolution.", **body},
                     headers=key(who))


def keyed_probes(http: httpx.Client, port: int, report: Report) -> None:
    # 1. budgets and spend poisoned by one report
    def trace_poison() -> tuple[bool, str]:
        r = http.post("/feedback", headers=key("fbonly"), json={
            "prompt": "anything", "model": "gpt-4.1", "quality": 1.0, "role": "solver",
            "cost_usd": 1_000_000})
        victim = route(http, "victim", role="solver")
        return (r.status_code < 300 or victim.status_code == 402,
                f"trace {short(r)}; victim's solver call {victim.status_code}")
    report.attempt("1", "feedback-only key posts a decision-less trace, role solver, "
                   "cost_usd 1e6", trace_poison)

    def tokens_poison() -> tuple[bool, str]:
        d = route(http, "mallory", role="writer").json()
        r = http.post("/feedback", headers=key("mallory"), json={
            "decision_id": d["decision_id"], "success": True, "tokens_in": 10**12})
        spend = http.get("/spend", params={"by": "api_key"}, headers=key("admin")).json()
        total = sum(row["cost_usd"] for row in spend["rows"])
        return (r.status_code < 300 and total > 1000,
                f"feedback {short(r)}; /spend total ${total:,.2f}")
    report.attempt("1", "route+feedback key reports tokens_in 1e12 on its own decision",
                   tokens_poison)

    # 2. a tier taken down by one key's reports
    def health_attack() -> tuple[bool, str]:
        statuses = []
        for _ in range(6):
            d = route(http, "mallory", tier="large").json()
            attempts = [{"model": m, "error": "timeout"} for m in LARGE * 8]
            r = http.post("/feedback", headers=key("mallory"), json={
                "decision_id": d["decision_id"], "error": "timeout", "model_used": LARGE[0],
                "attempts": attempts})
            statuses.append(r.status_code)
        time.sleep(0.6)
        tiers = http.get("/tiers", headers=key("victim")).json()
        states = [m["state"] for t in tiers if t["name"] == "large" for m in t["health"]]
        victim = route(http, "victim", tier="large")
        return ("open" in states or victim.status_code == 503,
                f"reports {statuses}; large circuits {states}; victim's forced-large call "
                f"{victim.status_code}")
    report.attempt("2", "one key reports timeouts for every large model, each repeated 8x, "
                   "on 6 of its decisions", health_attack)

    # 3. limits talked down
    def token_refund() -> tuple[bool, str]:
        # ~400 input tokens (what the router measures) and a 1-token output budget: reporting
        # 0 tokens may give back unused output, never the measured input
        body = {"prompt": " ".join(f"word{i}" for i in range(400)), "max_tokens": 1}
        first = route(http, "tpm", **body)
        per_call = first.json()["estimated_tokens_in"] + 1
        allowed = 5000 // per_call
        passed, last = 1, first.json()["decision_id"]
        for _ in range(3 * allowed):
            http.post("/feedback", headers=key("tpm"), json={
                "decision_id": last, "success": True, "tokens_in": 0, "tokens_out": 0})
            r = route(http, "tpm", **body)
            if r.status_code != 200:
                break
            last = r.json()["decision_id"]
            passed += 1
        return passed > allowed, f"{passed} calls of ~{per_call} tokens in a 5,000-token " \
                                 f"minute (at most {allowed}), each reporting 0 tokens"
    report.attempt("3", "tokens_per_minute key reports zero tokens for its own calls",
                   token_refund)

    def batch_rate() -> tuple[bool, str]:
        r = http.post("/route/batch", headers=key("rpm"), json={
            "requests": [{"prompt": f"call {i}"} for i in range(40)]})
        n = len(r.json().get("decisions", [])) if r.status_code == 200 else 0
        return n > 30, f"{short(r)[:60]}; {n} decisions on a 30-per-minute key"
    report.attempt("3", "rate_per_minute 30 key sends one batch of 40", batch_rate)

    def batch_charge_kept() -> tuple[bool, str]:
        body = {"prompt": "hi", "max_tokens": 2000}
        one = route(http, "tpm2", **body)
        batch = http.post("/route/batch", headers=key("tpm2"),
                          json={"requests": [body, body]})
        after = route(http, "tpm2", **body)
        return (batch.status_code == 429 and after.status_code == 429,
                f"first {one.status_code}, batch of 2 {batch.status_code}, "
                f"then one more {after.status_code} (fits if the refused batch gave back)")
    report.attempt("3", "a batch refused with 429 keeps its token charge", batch_charge_kept)

    # 4. starvation and unbounded reads
    def runs_paged() -> tuple[bool, str]:
        for i in range(200):
            route(http, "victim", run_id=f"abuse-run-{i}")
        started = time.perf_counter()
        r = http.get("/runs", params={"limit": 1}, headers=key("victim"))
        ms = (time.perf_counter() - started) * 1000
        paged = "next_offset" in r.json()
        return (not paged or ms > 1000,
                f"{r.status_code} in {ms:.0f} ms, paged: {paged} (bench/starvation.py "
                "measures /feedback under 8 pollers with 30,000 runs)")
    report.attempt("4", "GET /runs?limit=1 (route scope) with live runs", runs_paged)

    def spend_unpaged() -> tuple[bool, str]:
        r = http.get("/spend", params={"by": "run_id"}, headers=key("admin"))
        rows = len(r.json().get("rows", []))
        return ("next_offset" not in r.json() or rows > 1000,
                f"{r.status_code}, {len(r.content):,} bytes, {rows} rows, "
                f"next_offset {r.json().get('next_offset')}")
    report.attempt("4", "GET /spend?by=run_id", spend_unpaged)

    def huge_header() -> tuple[bool, str]:
        sent, answer, seconds = send_huge_header(port, 64 * 1024 * 1024)
        status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
        return (not status.startswith("HTTP/1.1 431") or sent > 16 * 2**20,
                f"{status!r} after {sent / 2**20:.1f} MB sent, {seconds:.1f} s")
    report.attempt("4", "a 64 MB request header", huge_header)

    # 5. a 500 for a body
    def nested() -> tuple[bool, str]:
        body = "[" * 100_000 + "]" * 100_000
        answers = [http.post(p, content=body, headers=key("admin"))
                   for p in ("/route", "/feedback", "/route/batch", "/admin/reload")]
        codes = [a.status_code for a in answers]
        return (any(c >= 500 for c in codes) or len(set(codes)) > 1,
                f"/route, /feedback, /route/batch, /admin/reload: {codes}")
    report.attempt("5", "deeply nested JSON (100,000 levels) on every endpoint", nested)

    # 6. what answers without a key; labels
    def unkeyed_reads() -> tuple[bool, str]:
        codes = {p: http.get(p).status_code for p in ("/metrics", "/docs", "/openapi.json")}
        return any(c == 200 for c in codes.values()), \
            f"{codes} (public_metrics and public_docs false on this server)"
    report.attempt("6", "/metrics, /docs, /openapi.json without a key", unkeyed_reads)

    def raw_labels() -> tuple[bool, str]:
        role = "plan\u0000\U0001F600" + "x" * 200
        route(http, "victim", role=role)
        text = http.get("/metrics", headers=key("admin")).text
        raw = role in text or "\u0000" in text or "\U0001F600" in text
        return raw, "raw role string in /metrics" if raw else "sanitised"
    report.attempt("6", "a role with a NUL byte, an emoji and 200 more characters", raw_labels)

    # 7. a ceiling broken
    def ceiling() -> tuple[bool, str]:
        r = http.post("/route", headers=key("victim"), json={
            "model": "gpt-4.1-mini", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]})
        above = r.status_code == 200 and r.json().get("tier") == "large"
        said = r.status_code == 422 and "model" in r.text
        return above and not r.json().get("detail") or not (above or said), short(r)
    report.attempt("7", "an image part with model gpt-4.1-mini (a medium ceiling)", ceiling)

    # 8. strict types
    def strict() -> tuple[bool, str]:
        q = http.post("/feedback", headers=key("victim"), json={
            "prompt": "p", "model": "gpt-4.1", "quality": "0.5"})
        inf = http.post("/route", headers=key("victim"),
                        content=b'{"prompt": "p", "max_cost_usd": Infinity}')
        return (q.status_code < 300 or inf.status_code < 300,
                f'quality "0.5": {q.status_code}; max_cost_usd Infinity: {inf.status_code}')
    report.attempt("8", 'quality "0.5" and max_cost_usd: Infinity', strict)


def open_probes(http: httpx.Client, report: Report) -> None:
    def text_plain() -> tuple[bool, str]:
        r = http.post("/admin/learning/reset", content=b"x", headers={"Content-Type":
                                                                      "text/plain"})
        fb = http.post("/feedback", headers={"Content-Type": "text/plain"}, content=json.dumps({
            "prompt": "p", "model": "gpt-4.1", "quality": 1.0, "cost_usd": 1_000_000}))
        return (r.status_code < 300 or fb.status_code < 300,
                f"reset {r.status_code}, trace {fb.status_code}")
    report.attempt("6", "open mode: text/plain posts (no CORS preflight) to /admin/learning/"
                   "reset and /feedback", text_plain)

    def cross_site() -> tuple[bool, str]:
        origin = {"Origin": "https://evil.example", **JSON}
        fb = http.post("/feedback", headers=origin, json={
            "prompt": "p", "model": "gpt-4.1", "quality": 1.0, "cost_usd": 1_000_000})
        reset = http.post("/admin/learning/reset", headers=origin)
        return (fb.status_code < 300 or reset.status_code < 300,
                f"trace {fb.status_code}, reset {reset.status_code}")
    report.attempt("6", "open mode: JSON posts with a cross-site Origin", cross_site)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, "model directory (default: the shipped one)")
    args = parser.parse_args(argv)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="tier-router-abuse-") as tmp:
        work = Path(tmp)
        keyed = Server(keyed_config(work, args.config), work / "keyed.log")
        open_server = Server(write_config(args.config, work / "open.yaml", store={
            "url": f"sqlite:///{work / 'open.db'}"}), work / "open.log")
        try:
            keyed.start()
            with httpx.Client(base_url=keyed.base, timeout=60) as http:
                keyed_probes(http, keyed.port, report)
            open_server.start()
            with httpx.Client(base_url=open_server.base, timeout=60) as http:
                open_probes(http, report)
        finally:
            keyed.stop()
            open_server.stop()
    through = [r for r in report.rows if r["through"]]
    print(f"\n{len(through)} of {len(report.rows)} hostile requests got through"
          + (": items " + ", ".join(sorted({r['item'] for r in through})) if through else ""))
    if args.out is not None:
        dump(args.out, {"run": uuid.uuid4().hex, "rows": report.rows})
    return 1 if through else 0


if __name__ == "__main__":
    raise SystemExit(main())
