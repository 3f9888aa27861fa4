"""How close GET /spend's off-policy estimate comes to the truth, on a replay where every tier's
outcome of every prompt is known (the shared data's full labels).

Offline and in-process, with the service's own decision code (no server): the shared data's
train split of ``--source`` (RouterBench by default), on the two tiers ``--tiers`` (medium and
large by default, their representative models' labels as `tier-router replay` maps them, and
each call's *real* cost: the representative model's logged ``total_cost``). Per seed:

1. **Log** ``--calls`` shuffled calls with a behaviour policy whose propensities are known:
   ``map`` (default) is the learned map while it learns, exactly as the service runs it
   (`LearnedMap.assess` + `pipeline.choose` with the seeded exploration draw, the evidence of
   each outcome summed with `traces.evidence.increments`, the map refitted every
   ``--refit`` outcomes); ``uniform`` picks each tier with equal probability;
   ``strongest`` is a shadow-mode caller that always follows the strongest tier (propensity
   1), the map learned from another log of the same size by the ``map`` policy (another
   seed): the target's cheaper calls have no overlap, only DR's direct model speaks for them.
   Each call's
   category is its data set's own task name (RouterBench's eval_name), sent as ``task``; no
   embedding clusters, and the model's scores are left out (every call scores the same per
   tier), so the map learns from its categories alone.
2. **Target**: the map as it stands after the log, at ``--target``, its fractional allowance
   as probabilities (`decision.target_policy`), what GET /spend estimates.
3. **Estimate** its quality and cost over always-strongest's from the log alone
   (`decision.off_policy`: IPS, SNIPS, DR with ``--resamples`` Poisson-bootstrap intervals),
   and compute the **truth** from the full labels on the same calls: sum over calls of the
   target's probabilities times each tier's known label (cost), over always-strongest's.

Prints, per seed, the truth (on the logged calls, and on every prompt of the source) and each
estimator's figure with its interval ("withheld" where the estimate withholds it), the
effective calls, the overlap and the unsupported share; then, per estimator, the mean
absolute and signed error and the share of seeds whose interval covers the truth, over every
call and per category (task) as GET /spend reports them.

    .venv/bin/python bench/off_policy_check.py --data-dir ../shared/data --seeds 10
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router.config import Settings, load_settings
from router.decision.categories import Signals
from router.decision.choice import CallFacts, TierTable
from router.decision.learned_map import COLUMNS, LearnedMap
from router.decision.map_fit import empty_map, fit_map
from router.decision.off_policy import ESTIMATORS, Estimate, Logged, estimate, rank_groups
from router.decision.pipeline import Reads, choose
from router.decision.policy import ExplorationDraw
from router.decision.target_policy import LoggedCall, target_choice
from router.traces.evidence import increments
from training.ingest import load_outcomes
from training.labels import tier_table, views_of

FLAT_SCORE = 0.5  # every tier's score of every call: the map learns from categories alone


@dataclass(frozen=True)
class Calls:
    """The replayed calls: every tier's label and real cost, each call's task and tokens."""

    labels: np.ndarray  # (n, T)
    costs: np.ndarray  # (n, T) the representative model's real cost (USD)
    tasks: list[str]
    tokens: list[int]


def load_calls(settings: Settings, data_dir: Path, source: str) -> Calls:
    """The source's train prompts with both tiers' labels and real costs known."""
    outcomes, _ = load_outcomes(data_dir, [], sources=[source.split("/")[0]])
    outcomes = outcomes[outcomes["source"].astype(str).str.startswith(source)]
    table = tier_table(outcomes, settings)
    keep = (table.prompts["split"] == "train").to_numpy() & ~np.isnan(table.labels).any(axis=1)
    table = table.subset(keep)
    tier_of = settings.tier_of_training_model()
    priority = {m: i for t in settings.tiers for i, m in enumerate(t.training_models)}
    frame = outcomes.assign(tier=outcomes["model"].map(tier_of),
                            priority=outcomes["model"].map(priority)).dropna(subset=["tier"])
    first = frame.sort_values("priority", kind="stable").drop_duplicates(
        ["prompt_id", "tier"], keep="first")  # the representative model, as the labels
    cost = first.pivot_table(index="prompt_id", columns="tier", values="cost_usd")
    costs = cost.reindex(index=table.prompts["prompt_id"], columns=settings.tier_names)
    ok = ~np.isnan(costs.to_numpy()).any(axis=1)
    table = table.subset(ok)
    views = views_of(table.prompts)
    return Calls(table.labels, costs.to_numpy()[ok], [str(t) for t in table.prompts["task"]],
                 [v.tokens_in for v in views])


@dataclass(frozen=True)
class Log:
    """What a behaviour policy logged, and the calls it logged (indexes into `Calls`)."""

    index: np.ndarray
    tier: np.ndarray
    propensity: np.ndarray
    learned: LearnedMap  # the map as it stands after the log


def log_calls(calls: Calls, order: np.ndarray, settings: Settings, behaviour: str,
              refit: int, seed: int) -> Log:
    """Run `behaviour` over the calls in `order` (module docstring, step 1)."""
    config, tiers = settings.learning, tuple(settings.tier_names)
    table = TierTable.of(settings)
    rng = np.random.default_rng(seed)
    learned = empty_map(tiers, config)
    sums: dict[tuple[str, str], np.ndarray] = {}
    chosen, propensities = [], []
    for k, i in enumerate(order):
        if behaviour == "uniform":
            tier = int(rng.integers(len(tiers)))
            propensity = 1.0 / len(tiers)
        elif behaviour == "strongest":  # a shadow caller that always follows its own large
            tier, propensity = len(tiers) - 1, 1.0
        else:
            tier, propensity = _map_step(learned, table, calls, int(i), settings,
                                         float(rng.random()))
        chosen.append(tier)
        propensities.append(propensity)
        decision = {"propensity": propensity, "task": calls.tasks[i], "reason": "classifier",
                    "prior_scores": json.dumps(dict.fromkeys(tiers, FLAT_SCORE))}
        outcome = {"tier": tiers[tier], "quality": float(calls.labels[i, tier])}
        for namespace, path, name, values in increments(outcome, decision, tiers, config, None):
            row = sums.setdefault((namespace, path), np.zeros((len(tiers), len(COLUMNS))))
            row[tiers.index(name)] += values
        if (k + 1) % refit == 0 or k + 1 == len(order):
            learned = fit_map(sums, tiers, config, seed=seed)
    return Log(order, np.array(chosen), np.array(propensities), learned)


def _map_step(learned: LearnedMap, table: TierTable, calls: Calls, i: int, settings: Settings,
              draw: float) -> tuple[int, float]:
    """The service's decision of call i with exploration on: (tier, propensity)."""
    facts = CallFacts(tokens_in=calls.tokens[i],
                      expected_tokens_out=settings.expected_output_tokens, task=calls.tasks[i])
    costs = [t.estimate_cost(facts.tokens_in, facts.expected_tokens_out) for t in table.tiers]
    verdict = learned.assess(Signals(task=calls.tasks[i]), None,
                             [FLAT_SCORE] * len(table.names), math.nan,
                             settings.quality_target, settings.exploration_rate, costs)
    scores = dict(zip(table.names, verdict.quality, strict=True))
    rate = settings.exploration_rate  # 0: the map's allowance still draws (the service's way)
    reads = Reads(draw=lambda: ExplorationDraw(rate, draw))
    choice = choose(scores, table, settings.quality_target, CallFacts(
        **{**facts.__dict__, "learned": verdict}), reads)
    return table.index(choice.tier), float(choice.propensity or 1.0)


def check(calls: Calls, log: Log, settings: Settings, resamples: int, level: float,
          seed: int, max_unsupported: float = 0.05
          ) -> list[tuple[str | None, dict[str, float], Estimate]]:
    """(category, the truth, the estimate) of the final map's quality and cost over
    always-strongest's, every call first (None), then per task as GET /spend groups them: the
    truth on the logged calls themselves, and (``*_all``) on every prompt of the source (the
    traffic the logged calls were drawn from, which the intervals are about)."""
    table = TierTable.of(settings)
    every = np.arange(len(calls.tasks))
    target = [target_choice(log.learned, table, LoggedCall(
        Signals(task=calls.tasks[i]), None, [FLAT_SCORE] * len(table.names),
        calls.tokens[i], settings.expected_output_tokens), settings.quality_target)
        for i in every]
    everywhere = np.array([t.probabilities for t in target])
    probabilities = everywhere[log.index]
    labels, costs = calls.labels[log.index], calls.costs[log.index]
    rows = np.arange(len(log.index))
    logged = Logged(tier=log.tier, propensity=log.propensity, quality=labels[rows, log.tier],
                    cost=costs[rows, log.tier], target=probabilities,
                    predicted_quality=np.array([target[i].quality for i in log.index]),
                    predicted_cost=np.array([target[i].costs for i in log.index]))
    tasks = np.array(calls.tasks)
    groups, names = rank_groups(list(tasks[log.index]), 10)
    overall, per = estimate(logged, groups, len(names), resamples=resamples, level=level,
                            seed=seed, max_unsupported=max_unsupported)
    out: list[tuple[str | None, dict[str, float], Estimate]] = []
    for name, e, mine, theirs in [(None, overall, np.full(len(rows), True), every >= 0)] + [
            (name, e, groups == k, tasks == name) for k, (name, e) in enumerate(zip(
                names, per, strict=True))]:
        truth = {"quality": _ratio(probabilities[mine], labels[mine]),
                 "cost": _ratio(probabilities[mine], costs[mine]),
                 "quality_all": _ratio(everywhere[theirs], calls.labels[theirs]),
                 "cost_all": _ratio(everywhere[theirs], calls.costs[theirs]),
                 "cheap_share": float(probabilities[mine, 0].mean())}
        out.append((name, truth, e))
    return out


def _ratio(probabilities: np.ndarray, values: np.ndarray) -> float:
    """The policy's total over always-strongest's, from every tier's known value."""
    return float(np.sum(probabilities * values) / np.sum(values[:, -1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--config", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--source", default="routerbench")
    parser.add_argument("--tiers", nargs="+", default=["medium", "large"])
    parser.add_argument("--behaviour", choices=["map", "uniform", "strongest"],
                        default="map")
    parser.add_argument("--calls", type=int, default=1500, help="logged calls per seed")
    parser.add_argument("--exploration", type=float, default=None,
                        help="exploration_rate of the logging map (default: the config's; 0: "
                             "only the map's allowance draws)")
    parser.add_argument("--refit", type=int, default=50, help="outcomes between map rebuilds")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--max-unsupported", type=float, default=0.05,
                        help="the estimate's bound on the unsupported share above which IPS and "
                             "SNIPS are withheld (GET /spend's: 0.05; 1: never withheld)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)

    shipped = load_settings(args.config)
    settings = shipped.model_copy(update={
        "tiers": [shipped.tier(t) for t in args.tiers], "task_rules": {}, "pins": [],
        "safe_tier": args.tiers[-1],
        "learning": shipped.learning.model_copy(update={"cluster_bits": 0}),
        **({} if args.exploration is None else {"exploration_rate": args.exploration})})
    calls = load_calls(settings, args.data_dir, args.source)
    n = min(args.calls, len(calls.tasks))
    print(f"{args.source}: {len(calls.tasks)} train prompts with both tiers' labels and costs; "
          f"{n} logged per seed by the {args.behaviour} policy (exploration_rate "
          f"{settings.exploration_rate}), target: the map after the log at quality_target "
          f"{settings.quality_target}; {args.resamples} resamples, {args.level:.0%} intervals")
    print(f"{'seed':>4} {'figure':>7} {'truth':>6} {'all':>6}  " + "  ".join(
        f"{e.upper():<22}" for e in ESTIMATORS) + f"  {'eff.':>6} {'eff.top':>7} {'overlap':>7} "
        f"{'unsup.':>6} {'cheap':>5}")
    results: dict[str | None, list[dict[str, Any]]] = {}
    for seed in range(args.seeds):
        started = time.perf_counter()
        order = np.random.default_rng(seed).permutation(len(calls.tasks))[:n]
        log = log_calls(calls, order, settings, args.behaviour, args.refit, seed)
        if args.behaviour == "strongest":  # the map learned elsewhere, by itself
            other = np.random.default_rng(seed + 1000).permutation(len(calls.tasks))[:n]
            learned = log_calls(calls, other, settings, "map", args.refit, seed + 1000).learned
            log = Log(log.index, log.tier, log.propensity, learned)
        checked = check(calls, log, settings, args.resamples, args.level, seed,
                        args.max_unsupported)
        _, truth, e = checked[0]
        for figure in ("quality", "cost"):
            cells = "  ".join(f"{_cell(getattr(e, figure)[name]):<22}" for name in ESTIMATORS)
            print(f"{seed:>4} {figure:>7} {truth[figure]:>6.3f} {truth[figure + '_all']:>6.3f}  "
                  f"{cells}  "
                  f"{e.effective_calls:>6.0f} {e.strongest_effective_calls:>7.0f} "
                  f"{e.overlap:>7.2f} {e.unsupported:>6.3f} {truth['cheap_share']:>5.2f}")
        seconds = time.perf_counter() - started
        for name, truth, e in checked:
            results.setdefault(name, []).append({
                "seed": seed, "truth": truth, "seconds": seconds, "calls": e.calls,
                "effective": e.effective_calls,
                "strongest_effective": e.strongest_effective_calls,
                "overlap": e.overlap, "unsupported": e.unsupported,
                **{f"{figure}_{name}": vars(i) for figure in (
                    "quality", "cost") for name, i in getattr(e, figure).items()}})
    print(summary(results[None]))
    for name in sorted(k for k in results if k is not None):
        calls_per_seed = np.mean([r["calls"] for r in results[name]])
        print(f"category task:{name} ({calls_per_seed:.0f} logged calls a seed):")
        print(summary(results[name]).split("\n", 1)[1])
    if args.out is not None:
        args.out.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    return 0


def summary(results: list[dict[str, Any]]) -> str:
    """Per figure and estimator: mean absolute and signed error against the truth on the
    logged calls, interval coverage of it and of the truth on every prompt, mean width."""
    lines = [f"over {len(results)} seeds: estimator  mean |error|  mean error  coverage  "
             "coverage(all)  mean width  (withheld: no overlap or not enough evidence)"]
    for figure in ("quality", "cost"):
        for name in ESTIMATORS:
            got = [(r[f"{figure}_{name}"], r["truth"][figure], r["truth"][f"{figure}_all"])
                   for r in results if r[f"{figure}_{name}"]["value"] is not None]
            if not got:
                lines.append(f"  {figure:>7} {name:<5} withheld in every seed")
                continue
            errors = [i["value"] - t for i, t, _ in got]
            # the intervals are rounded to 4 decimals: so is the truth they are held against
            covered = [i["low"] is not None and i["low"] <= round(t, 4) <= i["high"]
                       for i, t, _ in got]
            covered_all = [i["low"] is not None and i["low"] <= round(a, 4) <= i["high"]
                           for i, _, a in got]
            widths = [i["high"] - i["low"] for i, _, _ in got if i["low"] is not None]
            lines.append(f"  {figure:>7} {name:<5} {np.mean(np.abs(errors)):>11.4f} "
                         f"{np.mean(errors):>+11.4f} {np.mean(covered):>9.0%} "
                         f"{np.mean(covered_all):>14.0%} "
                         f"{np.mean(widths) if widths else math.nan:>11.4f}  "
                         f"({len(results) - len(got)} withheld)")
    return "\n".join(lines)


def _cell(i: Any) -> str:
    if i.value is None:
        return "withheld"
    return f"{i.value:.3f} [{i.low:.3f},{i.high:.3f}]" if i.low is not None else f"{i.value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
