"""The quick start's figures: a team serves tier-router in shadow mode on its own traffic,
watches the map fill, reads what following would save, then follows.

    nice -n 10 .venv/bin/python bench/quickstart_replay.py --data-dir ../shared/data \
        --cache-dir .cache/embeddings --own-cheap-share 0.3 \
        --out bench/results/quickstart_replay.json

Starts `tier-router serve` (`training.traffic.replay.live_service`: its own trace store under
``--work``) with ``shadow: true`` on the ``--tiers`` of ``--source``'s train split (RouterBench
by default, its eval_name sent as each call's `task`), and plays the team's agent over HTTP:

1. **Shadow** (``--shadow-calls``): the agent calls its own model, the strongest tier's, except
   a random ``--own-cheap-share`` of calls it already sends to the cheapest tier's model (a
   habit, drawn independently of the prompt); it asks `POST /route` with that `model`, posts
   the real outcome of the model it used (`POST /feedback`), and per window reads the map
   (`GET /map`) and what following would buy: the router's picks judged against the data set's
   known outcomes (only a replay can; a live team reads `GET /spend`'s `shadow` estimate).
2. **Follow** (``--follow-calls``): the same agent now calls the tier the router picks
   (`shadow: false` per request) and posts that model's real outcome.

Every ``--run-length`` consecutive calls are one agent run (`run_id`), whose outcome
(`POST /runs/{run_id}/outcome`) is a success when every one of its calls was answered well
(label >= 0.5) by the model that served it: a construction over the data set's real labels, so
that `/spend` can show cost per successful run by map revision. Quality and cost are shares of
always-strongest's on the same calls (`training.traffic.replay_metrics.shares`: the config's
prices on the service's token estimate). With ``--holdout`` (default) the prior is refitted
without the source (`holdout_prior`): a new deployment's model never saw the team's traffic.
After the service stops, `tier-router map` prints the map from its store. Traffic only goes
to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.config import Settings, load_settings  # noqa: E402
from router.decision.artifact import load_model  # noqa: E402
from router.schemas import RunCosts  # noqa: E402
from router.traces.run_records import format_run_costs  # noqa: E402
from training.embed_cache import (  # noqa: E402
    EmbeddingCache,
    embedding_backend,
    training_embedder,
)
from training.selection import head_recipe  # noqa: E402
from training.traffic.replay import (  # noqa: E402
    Traffic,
    holdout_prior,
    live_service,
    load_traffic,
    observed_tiers,
    replay_settings,
    restrict_tiers,
)
from training.traffic.replay_metrics import decision_costs, shares  # noqa: E402


class Team:
    """The team's agent against one live service: its own model choice, its runs, its reads."""

    def __init__(self, http: httpx.Client, traffic: Traffic, settings: Settings,
                 rng: np.random.Generator, cheap_share: float, run_length: int):
        self.http = http
        self.traffic = traffic
        self.settings = settings
        self.rng = rng
        self.cheap_share = cheap_share
        self.run_length = run_length
        self.tiers = settings.tier_names
        self.labels = traffic.table.labels

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json=body)
        r.raise_for_status()
        return dict(r.json())

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return dict(r.json())

    def map_summary(self) -> dict[str, Any]:
        """The map's state: revision, categories, and the task categories' choices."""
        page = self.get("/map", limit=1000)
        tasks = {c["task"]: f"{c['chosen']} ({c['why']})" for c in page["categories"]
                 if c["task"] is not None}
        return {"revision": page["revision"], "categories": page["total"],
                "why": dict(Counter(c["why"] for c in page["categories"])), "tasks": tasks}

    def play(self, calls: np.ndarray, phase: str, window: int) -> list[dict[str, Any]]:
        """Stream `calls` in `phase` ('shadow' or 'follow'); one summary per `window` calls."""
        windows, batch, rows, served, failed = [], [], [], [], False
        own = len(self.tiers) - 1
        for k, i in enumerate(calls):
            i = int(i)
            run_id = f"{phase}-{k // self.run_length}"
            body: dict[str, Any] = {**self.traffic.body(i), "role": "agent", "run_id": run_id}
            if phase == "shadow":
                own = 0 if self.rng.random() < self.cheap_share else len(self.tiers) - 1
                body["model"] = self.settings.tier(self.tiers[own]).models[0]
            else:
                body["shadow"] = False
            decision = self.post("/route", body)
            tier = self.tiers[own] if phase == "shadow" else decision["tier"]
            label = self.labels[i, self.tiers.index(tier)]
            self.post("/feedback", {"decision_id": decision["decision_id"],
                                    "model_used": body.get("model", decision["model"]),
                                    "quality": float(label)})
            failed = failed or not label >= 0.5
            if (k + 1) % self.run_length == 0:
                self.post(f"/runs/{run_id}/outcome", {"success": not failed})
                failed = False
            batch.append(decision)
            rows.append(i)
            served.append(self.tiers.index(tier))
            if len(batch) == window:
                windows.append(self.window(batch, rows, served, phase, k + 1))
                batch, rows, served = [], [], []
        return windows

    def window(self, decisions: list[dict[str, Any]], rows: list[int], served: list[int],
               phase: str, done: int) -> dict[str, Any]:
        labels = self.labels[rows]
        costs = decision_costs(decisions, self.settings)
        picks = np.array([self.tiers.index(d["tier"]) for d in decisions])
        quality, cost = shares(np.array(served), labels, costs)
        out = {"phase": phase, "calls": done, "quality": quality, "cost": cost,
               "cheap_share": float(np.mean(np.array(served) < len(self.tiers) - 1)),
               "explored": float(np.mean([d["reason"] == "explore" for d in decisions])),
               "map": self.map_summary()}
        if phase == "shadow":  # what following would have bought: only a replay knows
            out["picks_quality"], out["picks_cost"] = shares(picks, labels, costs)
            out["picks_cheap_share"] = float(np.mean(picks < len(self.tiers) - 1))
        return out


def prior_without(settings: Settings, args: argparse.Namespace) -> Path:
    """The shipped recipe refitted without the source (a new deployment's prior); one fitted
    by an earlier run with the same seed is reused."""
    out = args.work / f"prior-without-{args.source}-seed{args.seed}"
    if (out / "metadata.json").exists():
        return out
    serving = load_model(settings.model_dir)
    cache = EmbeddingCache(args.cache_dir,
                           training_embedder(settings, embedding_backend(serving.metadata)))
    return holdout_prior(settings, args.data_dir, [args.source], head_recipe(serving.metadata),
                         out, cache, args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--source", default="routerbench")
    parser.add_argument("--tiers", nargs="+", default=["medium", "large"])
    parser.add_argument("--shadow-calls", type=int, default=1500)
    parser.add_argument("--follow-calls", type=int, default=1000,
                        help="at most (the train split's fully labelled prompts after the "
                             "shadow calls)")
    parser.add_argument("--window", type=int, default=250)
    parser.add_argument("--run-length", type=int, default=5)
    parser.add_argument("--own-cheap-share", type=float, default=0.3,
                        help="share of its calls the team already sends to the cheapest tier")
    parser.add_argument("--quality-target", type=float, default=None,
                        help="the service's quality_target (default: the config's)")
    parser.add_argument("--no-holdout", dest="holdout", action="store_false",
                        help="serve the shipped model (trained on the source) as the prior")
    parser.add_argument("--config", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--work", type=Path, default=Path(".cache/quickstart"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="the report as JSON")
    args = parser.parse_args(argv)

    settings = load_settings(args.config)
    traffic = load_traffic(settings, args.data_dir, args.source, None)
    missing = [t for t in args.tiers if t not in observed_tiers(traffic.table)]
    if missing:
        parser.error(f"--tiers {missing}: {args.source} has no outcomes for them")
    traffic = restrict_tiers(traffic, args.tiers)
    served = replay_settings(settings, args.tiers).model_copy(update={"shadow": True})
    if args.quality_target is not None:
        served = served.model_copy(update={"quality_target": args.quality_target})
    if args.holdout:
        served = served.model_copy(update={"model_dir": prior_without(settings, args)})
    full = np.flatnonzero(~np.isnan(traffic.table.labels).any(axis=1))
    rng = np.random.default_rng(args.seed)
    calls = rng.permutation(full)[:args.shadow_calls + args.follow_calls]
    workdir = args.work / f"service-{args.own_cheap_share:g}-{served.quality_target:g}"
    if (workdir / "traces.db").exists():
        for f in workdir.glob("traces.db*"):
            f.unlink()  # a fresh store: the replay starts cold
    with live_service(served, workdir) as url, httpx.Client(base_url=url, timeout=60) as http:
        team = Team(http, traffic, served, rng, args.own_cheap_share, args.run_length)
        cold = team.post("/route", {**traffic.body(int(calls[0])), "dry_run": True})
        shadow = team.play(calls[:args.shadow_calls], "shadow", args.window)
        shadow_spend = team.get("/spend", by="tier")["shadow"]
        follow = team.play(calls[args.shadow_calls:], "follow", args.window)
        runs = team.get("/spend", by="tier")["runs"]
    printed = subprocess.run([sys.executable, "-m", "router.cli.main", "map", "--config",
                              str(workdir / "replay_config.yaml"), "--role", "agent"],
                             capture_output=True, text=True, check=True).stdout
    report = {"source": args.source, "tiers": args.tiers, "holdout": args.holdout,
              "quality_target": served.quality_target, "calls": len(calls),
              "own_cheap_share": args.own_cheap_share, "seed": args.seed,
              "cold": {k: cold[k] for k in ("tier", "detail")}, "windows": shadow + follow,
              "shadow_spend": shadow_spend, "runs": runs, "map": printed}
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    cold = report["cold"]
    lines = [f"quickstart replay of {report['source']} on tiers {report['tiers']} at "
             f"quality_target {report['quality_target']:g}, {report['calls']} calls (prior "
             f"{'without' if report['holdout'] else 'trained on'} it; the team already sends "
             f"{report['own_cheap_share']:.0%} of its calls to {report['tiers'][0]})",
             f"cold: {cold['tier']} ({cold['detail']})",
             "phase   calls  quality  cost  cheap  | picks: quality  cost  cheap | revision "
             "categories  task choices"]
    for w in report["windows"]:
        picks = (f"{w['picks_quality']:.3f}  {w['picks_cost']:.3f}  {w['picks_cheap_share']:.2f}"
                 if w["phase"] == "shadow" else f"{'(followed)':>20}")
        m = w["map"]
        tasks = ", ".join(f"{t}: {c}" for t, c in sorted(m["tasks"].items()))
        lines.append(f"{w['phase']:<7} {w['calls']:>5}  {w['quality']:.3f}  {w['cost']:.3f}  "
                     f"{w['cheap_share']:.2f}  | {picks:>24} | {m['revision']:>8} "
                     f"{m['categories']:>10}  {tasks}")
    s = report["shadow_spend"]
    lines.append(f"/spend after the shadow phase: {s['calls']} shadow calls; followed "
                 f"{s['followed_usd']:.4f} USD, the router's picks {s['routed_usd']:.4f} USD: "
                 f"following would save {s['saved_fraction']:.1%}")
    lines.append("/spend's runs after both phases (as `tier-router spend` prints them):")
    lines.append(format_run_costs(RunCosts.model_validate(report["runs"])))
    lines.append("tier-router map --role agent, after the replay:")
    lines.append(report["map"].rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
