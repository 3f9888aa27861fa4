"""`tier-router replay`: labelled traffic through a live service, as an agent sends it.

The traffic is one or several labelled sources mixed (shared data sets through their adapters,
their train split only, or a TRACES.md file); each call carries its data set's own category as
its `task` (RouterBench's eval_name, a file name, LLMRouter's cluster id, RouterArena's
benchmark, AlpacaEval's subset), as an agent step names itself, unless the names are withheld.
For each shuffled order: reset the service's learning state (``POST /admin/learning/reset``),
sweep the scored calls with the prior alone, then stream the learning calls: ``POST /route``,
then ``POST /feedback`` with the real outcome of the chosen tier's model on that prompt (the
representative label `training.labels` gives), over HTTP only. After ``learn`` outcomes the
state is frozen (no more feedback), its final maps are waited for, and the scored calls are
swept again, then routed once more as live calls (the map's allowance drawn, no feedback): the
default point a deployment realises after ``learn`` outcomes. A sweep routes every scored call
``dry_run`` at the config's knob and at every ``quality_target`` of
`training.traffic.replay_metrics.KNOBS`. What the service answered is judged against every
tier's known outcome (`training.traffic.replay_metrics`): per window of the learning phase, the
realised quality and the cost as shares of always-strongest's; for the learning phase and the
live calls after it, the same beside the length rule and a random mixture at that cost; per
sweep, APGR, savings at 95% of always-strongest's quality, the default point's quality, cost
and calibration, beside the same baselines; per source where several are mixed.

With a data set source, the ceiling beside the result is the serving recipe fitted with full
information (every tier's label) on the train split minus the scored prompts, scored on them
offline. `holdout_prior` fits the serving recipe without the named sources: the prior of a new
deployment that never saw this kind of traffic.
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
from router.decision.artifact import load_model, save_model
from router.errors import ArtifactError, RouterError
from training.embed_cache import EmbeddingCache, Featurised, featurise
from training.ingest import load_outcomes, read_traces
from training.labels import PromptTable, tier_table
from training.selection import Candidate, pair_apgrs
from training.traffic.replay_metrics import (
    KNOBS,
    category_ceiling,
    live_stats,
    sweep_stats,
    window_stats,
)
from training.traffic.replay_summary import format_replay, summarise
from training.train import fit_final

log = logging.getLogger(__name__)

class Http(Protocol):
    """What the replay needs of an HTTP client (httpx.Client; a TestClient in tests)."""

    def post(self, url: str, *args: Any, **kwargs: Any) -> Any: ...

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Traffic:
    """Labelled calls: prompts (with `messages` where they are chats), each call's category
    (the data set's own: RouterBench's eval_name, a file name, a cluster id) and every tier's
    label."""

    table: PromptTable
    name: str

    def body(self, i: int, with_task: bool = True) -> dict[str, Any]:
        row = self.table.prompts.iloc[i]
        messages = row.get("messages")
        body: dict[str, Any] = ({"messages": messages} if isinstance(messages, list) and messages
                                else {"prompt": str(row["prompt"])})
        task = row.get("task")
        if with_task and isinstance(task, str) and task:
            body["task"] = task[:64]
        return body


def load_traffic(
    settings: Settings, data_dir: Path | None, sources: Sequence[str] | str | None,
    traces: Path | None,
) -> Traffic:
    """The sources' prompts with tier labels, mixed, in the config's tier order (train split
    of a shared data set: the test split stays out of every replay)."""
    if traces is not None:
        frame, errors = read_traces(traces)
        if errors:
            log.warning("%d bad trace lines skipped (first: %s)", len(errors), errors[0])
        return Traffic(tier_table(frame, settings), traces.stem)
    if data_dir is None or not sources:
        raise RouterError("replay needs --traces FILE, or --data-dir and --source")
    names = [sources] if isinstance(sources, str) else list(sources)
    outcomes, _ = load_outcomes(data_dir, [], sources=sorted({s.split("/")[0] for s in names}))
    table = tier_table(outcomes, settings)
    source = table.prompts["source"].astype(str)
    keep = (table.prompts["split"] == "train") & np.logical_or.reduce(
        [(source == s) | source.str.startswith(s + "/") for s in names])
    table = table.subset(keep.to_numpy())
    if len(table) == 0:
        raise RouterError(f"sources {names} have no train split in {data_dir}")
    return Traffic(table, "+".join(names))


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
    settings: Settings, data_dir: Path, source: Sequence[str] | str, recipe: Candidate,
    out: Path, cache: EmbeddingCache, seed: int = 0,
) -> Path:
    """The serving recipe fitted on every other source's train split, saved at `out`; a prior
    already at `out` from the same recipe, seed, data files, embedder and tier models is
    reused (a fit takes minutes; the with- and without-names replays share one)."""
    names = [source] if isinstance(source, str) else list(source)
    outcomes, files = load_outcomes(data_dir, [])
    fitted_from = {
        "router_version": f"lodo-{'+'.join(names)}-{recipe.name}-seed{seed}",
        "head": recipe.as_metadata(), "embedder_backend": cache.embedder.name, "seed": seed,
        "data": files, "held_out_source": "+".join(names),
        "tier_models": {t.name: list(t.training_models) for t in settings.tiers},
    }
    if _same_prior(out, fitted_from):
        log.info("reusing the prior fitted without %s at %s", "+".join(names), out)
        return out
    table = tier_table(outcomes, settings)
    sources = table.prompts["source"].astype(str)
    held = np.logical_or.reduce([sources.str.startswith(s).to_numpy() for s in names])
    keep = (table.prompts["split"] == "train").to_numpy() & ~held
    rows = table.subset(keep)
    data, _ = featurise(rows, cache)
    model = fit_final(data, recipe, seed)
    save_model(out, model.head, model.features, **fitted_from,
               training_prompts=int(len(rows)),
               training_prompts_by_source=rows.prompts["source"].value_counts().to_dict())
    return out


def _same_prior(out: Path, fitted_from: dict[str, Any]) -> bool:
    """Whether `out` holds a loadable prior whose metadata says it was fitted from
    `fitted_from` (compared as JSON, the form it was saved in)."""
    try:
        metadata = load_model(out).metadata
    except ArtifactError:
        return False
    expected = json.loads(json.dumps(fitted_from, default=str))
    return all(metadata.get(key) == value for key, value in expected.items())


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


class Replay:
    """One live service, one labelled traffic: orders of (reset, prior sweep, learn, freeze,
    frozen sweep). `with_task` sends each call's category as its `task`; `role`, when given, is
    sent with every call."""

    def __init__(self, http: Http, traffic: Traffic, settings: Settings,
                 headers: dict[str, str] | None = None, with_task: bool = True,
                 knobs: Sequence[float] = KNOBS, role: str | None = None):
        self.http = http
        self.traffic = traffic
        self.settings = settings
        self.headers = headers or {}
        self.with_task = with_task
        self.knobs = tuple(knobs)
        self.role = role

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # every POST is JSON to the router, a bodyless one too
        r = self.http.post(path, json=body, headers={"Content-Type": "application/json",
                                                     **self.headers})
        if r.status_code >= 400:
            raise RouterError(f"{path} answered {r.status_code}: {r.text[:300]}")
        return dict(r.json())

    def route(self, indices: np.ndarray, tag: str, **extra: Any) -> list[dict[str, Any]]:
        # a role only when asked: one constant role is one category that decides every call
        # before the embedding clusters could, which a replay without task names must not add
        role = {"role": self.role} if self.role else {}
        return [self._post("/route", {**self.traffic.body(int(i), self.with_task), **role,
                                      "run_id": tag, **extra})
                for i in indices]

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

    def sweep(self, indices: np.ndarray, tag: str) -> dict[str, Any]:
        """The state's decisions on `indices` at the config's knob and at every knob of the
        sweep, all `dry_run` (nothing explored, nothing learned), judged overall and per
        source."""
        tiers = self.settings.tier_names
        default = self.route(indices, tag, dry_run=True)
        picks = np.array([[tiers.index(d["tier"])
                           for d in self.route(indices, tag, dry_run=True, quality_target=k)]
                          for k in self.knobs])
        labels = self.traffic.table.labels[indices]
        sources = self.traffic.table.prompts["source"].to_numpy()[indices]
        tasks = self.traffic.table.prompts["task"].fillna("").to_numpy()[indices]
        out = sweep_stats(picks, default, labels, self.settings)
        # the data's own categories, sent or withheld: what knowing them could rank
        out["category_ceiling"] = category_ceiling(labels, tasks)
        out["by_source"] = {
            str(s): {**sweep_stats(picks[:, sources == s],
                                   [d for d, x in zip(default, sources, strict=True) if x == s],
                                   labels[sources == s], self.settings),
                     "category_ceiling": category_ceiling(labels[sources == s],
                                                          tasks[sources == s])}
            for s in np.unique(sources)} if len(np.unique(sources)) > 1 else {}
        return out

    def judge(self, decisions: Sequence[dict[str, Any]], indices: np.ndarray) -> dict[str, Any]:
        """Live decisions on `indices` judged overall and, where several sources are mixed,
        per source, each beside the length rule and a random mixture at its cost."""
        labels = self.traffic.table.labels[indices]
        sources = self.traffic.table.prompts["source"].to_numpy()[indices]
        names = np.unique(sources)
        out = live_stats(decisions, labels, self.settings)
        out["by_source"] = {
            str(s): live_stats([d for d, x in zip(decisions, sources, strict=True) if x == s],
                               labels[sources == s], self.settings)
            for s in names} if len(names) > 1 else {}
        return out

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
        prior = self.sweep(scored, f"replay-{seed}-prior")
        curve, decisions, batch, taught = [], [], [], 0
        for i in learning:
            (decision,) = self.route(np.array([i]), f"replay-{seed}-learn")
            taught += self.teach(decision, int(i))
            decisions.append(decision)
            batch.append(decision)
            if len(batch) == window:
                rows = learning[len(decisions) - window:len(decisions)]
                curve.append({"outcomes": taught,
                              **window_stats(batch, labels[rows], self.settings)})
                batch = []
        state = self.wait_for_state()
        frozen = self.sweep(scored, f"replay-{seed}-frozen")
        # the frozen state as live calls meet it (the allowance drawn, exploration on), with
        # no feedback: a dry run takes each category's base tier, so only this shows the
        # default point a deployment realises after `learn` outcomes
        after = self.judge(self.route(scored, f"replay-{seed}-after"), scored)
        return {"seed": seed, "outcomes": taught, "prior": prior, "curve": curve,
                "learning": self.judge(decisions, learning), "frozen": frozen, "after": after,
                "state_revision": state.get("revision"), "scored": scored.tolist()}


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
    window: int, seed: int, headers: dict[str, str] | None = None, with_task: bool = True,
    role: str | None = None,
) -> list[dict[str, Any]]:
    replay = Replay(http, traffic, settings, headers, with_task, role=role)
    results = []
    for k in range(orders):
        started = time.monotonic()
        results.append(replay.order(seed + k, learn, score, window))
        o = results[-1]
        log.info("order %d: APGR %.3f -> %.3f, learning %.3f of strongest's quality at %.3f "
                 "of its cost (%.0f s)", k + 1, o["prior"]["apgr"], o["frozen"]["apgr"],
                 o["learning"]["quality_vs_strongest"], o["learning"]["cost_vs_strongest"],
                 time.monotonic() - started)
    return results


__all__ = ["Replay", "Traffic", "ceiling_apgr", "format_replay", "holdout_prior", "live_service",
           "load_traffic", "observed_tiers", "replay_settings", "restrict_tiers", "run_orders",
           "summarise", "write_report"]
