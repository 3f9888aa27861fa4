"""`tier-router replay`: labelled traffic through a live service, as an agent sends it.

For each shuffled order of one labelled source (a shared data set through its adapter, or a
TRACES.md file): reset the service's learning state (``POST /admin/learning/reset``), route
the scored prompts once with the prior alone, then stream the learning prompts: ``POST
/route``, then ``POST /feedback`` with the real outcome of the chosen tier's model on that
prompt (the representative label `training.labels` gives), exactly as an agent would, over
HTTP only. After ``learn`` outcomes the state is frozen (no more feedback), its final maps are
waited for, and the scored prompts are routed again. The scores and tiers the service
returned are judged against every tier's known outcome:

* **APGR**: the mean over tier pairs of the area under the quality-versus-strong-share curve
  when the knob sweeps the returned scores (`training.selection.pair_apgrs`, as `evaluate`);
* **savings at 95% of large** over the same sweep (`training.report.curve_savings`);
* **tier shares** of the decisions the service made at the configured knob;
* **predicted vs realised** success of the chosen tier (its returned score vs its outcome).

The learning phase is reported per window of ``window`` outcomes (the learning curve). With
a data set source, the stream is its train split (scored prompts included), and the ceiling
beside the result is the serving recipe fitted with full information (every tier's label) on
that train split minus the scored prompts, scored on them offline. `holdout_prior` fits the
serving recipe on every other source: the prior of a new deployment that never saw this kind
of traffic.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import yaml

from router.config import Settings
from router.decision.artifact import save_model
from router.decision.choice import CallFacts
from router.errors import RouterError
from training.embed_cache import EmbeddingCache, Featurised, featurise
from training.ingest import load_outcomes, read_traces
from training.labels import PromptTable, tier_table
from training.report import curve_savings
from training.scoring import decide_tiers, tier_costs
from training.selection import Candidate, pair_apgrs
from training.train import fit_final

log = logging.getLogger(__name__)

T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


class Http(Protocol):
    """What the replay needs of an HTTP client (httpx.Client; a TestClient in tests)."""

    def post(self, url: str, *args: Any, **kwargs: Any) -> Any: ...

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Traffic:
    """A labelled source: prompts (with `messages` where they are chats) and every tier's label."""

    table: PromptTable
    name: str

    def body(self, i: int) -> dict[str, Any]:
        row = self.table.prompts.iloc[i]
        messages = row.get("messages")
        if isinstance(messages, list) and messages:
            return {"messages": messages}
        return {"prompt": str(row["prompt"])}


def load_traffic(
    settings: Settings, data_dir: Path | None, source: str | None, traces: Path | None
) -> Traffic:
    """One source's prompts with tier labels, in the config's tier order (train split for a
    shared data set: the test split stays out of every replay)."""
    if traces is not None:
        frame, errors = read_traces(traces)
        if errors:
            log.warning("%d bad trace lines skipped (first: %s)", len(errors), errors[0])
        return Traffic(tier_table(frame, settings), traces.stem)
    if data_dir is None or source is None:
        raise RouterError("replay needs --traces FILE, or --data-dir and --source")
    outcomes, _ = load_outcomes(data_dir, [], sources=[source])
    table = tier_table(outcomes, settings)
    table = table.subset((table.prompts["split"] == "train").to_numpy())
    if len(table) == 0:
        raise RouterError(f"source {source!r} has no train split in {data_dir}")
    return Traffic(table, source)


def observed_tiers(table: PromptTable) -> list[str]:
    """The tiers the source has outcomes for: a replay can only answer for those."""
    return [t for i, t in enumerate(table.tiers) if (~np.isnan(table.labels[:, i])).any()]


def restrict_tiers(traffic: Traffic, tiers: Sequence[str]) -> Traffic:
    table = traffic.table
    cols = [table.tiers.index(t) for t in tiers]
    return Traffic(PromptTable(table.prompts, table.labels[:, cols], table.weights, list(tiers)),
                   traffic.name)


def replay_settings(settings: Settings, tiers: Sequence[str]) -> Settings:
    """The config restricted to `tiers` (task rules naming another tier dropped)."""
    rules = {task: rule for task, rule in settings.task_rules.items()
             if (rule.tier or rule.min_tier) in tiers}
    safe = settings.safe_tier if settings.safe_tier in tiers else tiers[-1]
    return settings.model_copy(update={"tiers": [settings.tier(t) for t in tiers],
                                       "task_rules": rules, "safe_tier": safe})


def holdout_prior(
    settings: Settings, data_dir: Path, source: str, recipe: Candidate, out: Path,
    cache: EmbeddingCache, seed: int = 0,
) -> Path:
    """The serving recipe fitted on every other source's train split, saved at `out`."""
    outcomes, files = load_outcomes(data_dir, [])
    table = tier_table(outcomes, settings)
    sources = table.prompts["source"].astype(str)
    keep = ((table.prompts["split"] == "train") & ~sources.str.startswith(source)).to_numpy()
    rows = table.subset(keep)
    data, _ = featurise(rows, cache)
    model = fit_final(data, recipe, seed)
    save_model(out, model.head, model.features,
               router_version=f"lodo-{source}-{recipe.name}-seed{seed}",
               head=recipe.as_metadata(), embedder_backend=cache.embedder.name, seed=seed,
               data=files, training_prompts=int(len(rows)), held_out_source=source,
               training_prompts_by_source=rows.prompts["source"].value_counts().to_dict())
    return out


def ceiling_apgr(
    traffic: Traffic, scored: np.ndarray, recipe: Candidate, cache: EmbeddingCache, seed: int,
) -> float:
    """Full information: the recipe fitted on every other prompt of the source, on `scored`."""
    table = traffic.table
    train = np.ones(len(table), bool)
    train[scored] = False
    data, views = featurise(table, cache)
    rows = Featurised(table.subset(train), data.embeddings[train], data.numeric[train])
    model = fit_final(rows, recipe, seed)
    scores = model.scores(data.embeddings[scored], [views[i] for i in scored])
    scores = scores[:, [model.tiers.index(t) for t in table.tiers]]
    return mean_apgr(scores, table.labels[scored], table.tiers)


def mean_apgr(scores: np.ndarray, labels: np.ndarray, tiers: Sequence[str]) -> float:
    apgrs = pair_apgrs(scores, labels, list(tiers))
    return float(np.mean(list(apgrs.values()))) if apgrs else math.nan


def window_stats(
    decisions: Sequence[dict[str, Any]], labels: np.ndarray, settings: Settings
) -> dict[str, Any]:
    """The window's numbers from what the service answered and every tier's known outcome."""
    tiers = settings.tier_names
    scores = np.array([[d["scores"][t] for t in tiers] for d in decisions], dtype=float)
    chosen = np.array([tiers.index(d["tier"]) for d in decisions])
    rows = np.arange(len(decisions))
    realised = labels[rows, chosen]
    known = ~np.isnan(realised)
    full = ~np.isnan(labels).any(axis=1)
    savings = math.nan
    if full.sum() >= 20:
        facts = [CallFacts(tokens_in=int(d["estimated_tokens_in"]),
                           expected_tokens_out=settings.expected_output_tokens)
                 for d, f in zip(decisions, full, strict=True) if f]
        knobs = np.round(np.linspace(0, 1, 101), 2)[:, None].repeat(int(full.sum()), axis=1)
        picks = decide_tiers(scores[full], facts, knobs, settings)
        cost = tier_costs([f.tokens_in for f in facts], settings)
        savings = curve_savings(labels[full], cost, picks.T)
    return {
        "n": len(decisions),
        "apgr": mean_apgr(scores, labels, tiers),
        "savings_at_95": float(savings),
        "share": {t: float(np.mean(chosen == i)) for i, t in enumerate(tiers)},
        "predicted": float(scores[rows, chosen][known].mean()) if known.any() else math.nan,
        "realised": float(realised[known].mean()) if known.any() else math.nan,
        "explored": float(np.mean([d["reason"] == "explore" for d in decisions])),
    }


class Replay:
    """One live service, one labelled source: orders of (reset, prior, learn, freeze, score)."""

    def __init__(self, http: Http, traffic: Traffic, settings: Settings,
                 headers: dict[str, str] | None = None):
        self.http = http
        self.traffic = traffic
        self.settings = settings
        self.headers = headers or {}

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # every POST is JSON to the router, a bodyless one too
        r = self.http.post(path, json=body, headers={"Content-Type": "application/json",
                                                     **self.headers})
        if r.status_code >= 400:
            raise RouterError(f"{path} answered {r.status_code}: {r.text[:300]}")
        return dict(r.json())

    def route(self, indices: np.ndarray, tag: str) -> list[dict[str, Any]]:
        return [self._post("/route", {**self.traffic.body(int(i)), "role": "replay",
                                      "run_id": tag}) for i in indices]

    def teach(self, decision: dict[str, Any], i: int) -> bool:
        """Post the outcome of the chosen tier's model; False when the source has none."""
        label = self.traffic.table.labels[i, self.settings.tier_names.index(decision["tier"])]
        if np.isnan(label):
            return False
        self._post("/feedback", {"decision_id": decision["decision_id"],
                                 "quality": float(label), "model_used": decision["model"]})
        return True

    def wait_for_state(self, timeout: float = 60.0) -> dict[str, Any]:
        """The learning state once its final maps cover every outcome (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            state = dict(self.http.get("/admin/learning", headers=self.headers).json())
            if not state.get("enabled") or state.get("stale", 0) == 0 or (
                time.monotonic() > deadline
            ):
                return state
            time.sleep(0.5)

    def order(self, seed: int, learn: int, score: int, window: int) -> dict[str, Any]:
        n = len(self.traffic.table)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        if n < learn + score:
            raise RouterError(f"{self.traffic.name} has {n} prompts; the replay needs "
                              f"learn + score = {learn + score}")
        learning, scored = perm[:learn], perm[learn:learn + score]
        labels = self.traffic.table.labels
        self._post("/admin/learning/reset")
        prior = window_stats(self.route(scored, f"replay-{seed}-prior"), labels[scored],
                             self.settings)
        curve, batch, batch_rows, taught = [], [], [], 0
        for i in learning:
            (decision,) = self.route(np.array([i]), f"replay-{seed}-learn")
            taught += self.teach(decision, int(i))
            batch.append(decision)
            batch_rows.append(i)
            if len(batch) == window:
                curve.append({"outcomes": taught,
                              **window_stats(batch, labels[batch_rows], self.settings)})
                batch, batch_rows = [], []
        state = self.wait_for_state()
        after = window_stats(self.route(scored, f"replay-{seed}-frozen"), labels[scored],
                             self.settings)
        return {"seed": seed, "outcomes": taught, "prior": prior, "curve": curve,
                "frozen": after, "state_revision": state.get("revision"),
                "scored": scored.tolist()}


def summarise(orders: Sequence[dict[str, Any]], ceilings: Sequence[float]) -> dict[str, Any]:
    """Means over orders, and the APGR gain's 95% t-interval."""
    gains = np.array([o["frozen"]["apgr"] - o["prior"]["apgr"] for o in orders])
    k = len(gains)
    half = T_975.get(k - 1, 1.96) * gains.std(ddof=1) / math.sqrt(k) if k > 1 else math.nan

    def mean(where: str, key: str) -> float:  # NaN-aware: savings are NaN where 95% is unmet
        values = np.array([o[where][key] for o in orders], dtype=float)
        return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan

    strongest = next(iter(reversed(orders[0]["prior"]["share"])))
    return {
        "orders": k,
        "apgr_prior": mean("prior", "apgr"), "apgr_frozen": mean("frozen", "apgr"),
        "apgr_gain": float(gains.mean()), "apgr_gain_ci": [float(gains.mean() - half),
                                                           float(gains.mean() + half)],
        "ceiling_apgr": float(np.mean(ceilings)) if ceilings else math.nan,
        "savings_prior": mean("prior", "savings_at_95"),
        "savings_frozen": mean("frozen", "savings_at_95"),
        "gap_prior": mean("prior", "predicted") - mean("prior", "realised"),
        "gap_frozen": mean("frozen", "predicted") - mean("frozen", "realised"),
        "predicted_frozen": mean("frozen", "predicted"),
        "realised_frozen": mean("frozen", "realised"),
        "strongest": strongest,
        "strongest_share_prior": float(np.mean([o["prior"]["share"][strongest] for o in orders])),
        "strongest_share_frozen": float(np.mean([o["frozen"]["share"][strongest]
                                                 for o in orders])),
    }


def format_replay(report: dict[str, Any]) -> str:
    """The learning curve of the first order and the frozen-vs-prior table, as printed."""
    lines = [f"replay of {report['source']} through {report['url']} (prior "
             f"{report['prior']}, tiers {', '.join(report['tiers'])})"]
    first = report["orders"][0]
    lines.append("learning curve (order 1): outcomes  APGR  savings@95  pred  real  shares")
    for w in [{"outcomes": 0, **first["prior"]}, *first["curve"]]:
        shares = " ".join(f"{t}:{v:.2f}" for t, v in w["share"].items())
        lines.append(f"  {w['outcomes']:>6}  {w['apgr']:.3f}  {w['savings_at_95']:+.3f}  "
                     f"{w['predicted']:.3f}  {w['realised']:.3f}  {shares}")
    s = report["summary"]
    lines += [
        f"over {s['orders']} orders, scored on {report['score']} held-back prompts after "
        f"{report['learn']} outcomes:",
        f"  APGR prior {s['apgr_prior']:.3f} -> frozen {s['apgr_frozen']:.3f}: gain "
        f"{s['apgr_gain']:+.3f} (95% CI {s['apgr_gain_ci'][0]:+.3f} .. "
        f"{s['apgr_gain_ci'][1]:+.3f}); full-information ceiling {s['ceiling_apgr']:.3f}",
        f"  chosen tier predicted - realised: prior {s['gap_prior']:+.3f}, frozen "
        f"{s['gap_frozen']:+.3f} ({s['predicted_frozen']:.3f} vs {s['realised_frozen']:.3f})",
        f"  {s['strongest']} share: prior {s['strongest_share_prior']:.3f}, frozen "
        f"{s['strongest_share_frozen']:.3f}; savings@95 prior {s['savings_prior']:+.3f}, "
        f"frozen {s['savings_frozen']:+.3f}",
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")


@contextmanager
def live_service(settings: Settings, workdir: Path, timeout: float = 300) -> Iterator[str]:
    """`tier-router serve` on a free loopback port with `settings` (written to a file), its
    own trace store in `workdir`; yields its URL, stops it (SIGTERM) on exit."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "replay_config.yaml"
    raw = settings.model_dump(mode="json")
    # absolute: a relative model_dir is read beside the config file, which lives in workdir
    raw["model_dir"] = str(Path(settings.model_dir).resolve())
    raw["store"]["url"] = f"sqlite:///{workdir / 'traces.db'}"
    config.write_text(yaml.safe_dump(raw))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log_file = (workdir / "serve.log").open("a")
    proc = subprocess.Popen([sys.executable, "-m", "router.cli.main", "serve", "--config",
                             str(config), "--port", str(port), "--log-level", "WARNING"],
                            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RouterError(f"the replay service did not start; see {workdir}/serve.log")
            time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


def run_orders(
    http: Http, traffic: Traffic, settings: Settings, *, orders: int, learn: int, score: int,
    window: int, seed: int, headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    replay = Replay(http, traffic, settings, headers)
    results = []
    for k in range(orders):
        started = time.monotonic()
        results.append(replay.order(seed + k, learn, score, window))
        o = results[-1]
        log.info("order %d: APGR %.3f -> %.3f, predicted %.3f realised %.3f (%.0f s)", k + 1,
                 o["prior"]["apgr"], o["frozen"]["apgr"], o["frozen"]["predicted"],
                 o["frozen"]["realised"], time.monotonic() - started)
    return results


__all__ = ["Replay", "Traffic", "ceiling_apgr", "format_replay", "holdout_prior", "restrict_tiers",
           "live_service", "load_traffic", "observed_tiers", "replay_settings", "run_orders",
           "summarise", "write_report"]
