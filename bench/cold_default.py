"""Cold default study: what the decision realises before any outcome, leave-one-source-out.

For every labelled source with outcomes of both `medium` and `large` (two-tier mode, the
shipped config less `small`), the shipped recipe is fitted on every other source's train split
(`training.traffic.replay.holdout_prior`'s data, here in memory) and scores the held-out source's
train split offline; no service, no test split. A cold rule is then applied to those scores:

    medium  iff  confidence >= t  and  lower bound of (medium score / large score) >= q
    large   otherwise

``confidence`` is the guarded head's (`RouterModel.scores_with_confidence`); the lower bound
is the one-sided 90% bound when each score is worth ``n0`` outcomes (delta method on the
ratio; ``n0 = inf`` is the point ratio the service uses today). For each rule and held-out
source: the share of always-large's quality it realises, its cost against always-large at the
config's prices, and the length rule and a random mixture at the same cost. The rule with the
smallest mean cost that keeps at least 93% (and 95%) of large's quality on every held-out
source is printed and written, as markdown, to ``--out``.

    PYTHONPATH=. .venv/bin/python bench/cold_default.py --data-dir ../shared/data \
        --out bench/results/cold_default.md
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.config import load_settings
from router.decision.artifact import RouterModel, load_model
from training.embed_cache import (
    EmbeddingCache,
    Featurised,
    featurise,
    model_backend,
    training_embedder,
)
from training.ingest import load_outcomes
from training.labels import tier_table
from training.scoring import tier_costs
from training.selection import head_recipe, sweep_apgr
from training.train import fit_final

Z_90 = 1.2816  # one-sided 90%
THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.01)  # 1.01: the prior never counts
TARGETS = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97)
STRENGTHS = (math.inf, 30.0, 10.0, 4.0)


@dataclass
class HeldOut:
    """One held-out source's two-tier labels, costs, lengths and the prior's scores."""

    name: str
    tasks: np.ndarray
    y: np.ndarray  # (n, 2) medium, large
    cost: np.ndarray  # (n, 2)
    tokens: np.ndarray  # (n,)
    scores: np.ndarray  # (n, 2) medium, large, from the prior fitted without the source
    conf: np.ndarray  # (n,)

    def subset(self, mask: np.ndarray, name: str) -> HeldOut:
        return HeldOut(name, self.tasks[mask], self.y[mask], self.cost[mask], self.tokens[mask],
                       self.scores[mask], self.conf[mask])


def ratio_bound(scores: np.ndarray, n0: float) -> np.ndarray:
    """One-sided 90% lower bound of medium/large when each score is worth n0 outcomes."""
    m, lg = np.clip(scores[:, 0], 1e-4, 1), np.clip(scores[:, 1], 1e-4, 1)
    ratio = m / lg
    if math.isinf(n0):
        return ratio
    rel = np.sqrt((1 - m) / (m * (n0 + 1)) + (1 - lg) / (lg * (n0 + 1)))
    return ratio * (1 - Z_90 * rel)


def picks_medium(h: HeldOut, t: float, q: float, n0: float) -> np.ndarray:
    return (h.conf >= t) & (ratio_bound(h.scores, n0) >= q - 1e-9)


def outcome(h: HeldOut, medium: np.ndarray) -> tuple[float, float]:
    """(share of always-large's quality, cost against always-large)."""
    q = np.where(medium, h.y[:, 0], h.y[:, 1]).mean() / h.y[:, 1].mean()
    c = np.where(medium, h.cost[:, 0], h.cost[:, 1]).sum() / h.cost[:, 1].sum()
    return float(q), float(c)


def length_at_cost(h: HeldOut, cost: float) -> float:
    """Quality share of the length rule (shortest prompts to medium) at no more than `cost`."""
    order = np.argsort(h.tokens, kind="stable")
    saved = np.cumsum(h.cost[order, 1] - h.cost[order, 0]) / h.cost[:, 1].sum()
    # calls sent to medium: the fewest shortest ones that save at least 1 - cost
    k = 0 if cost >= 1 else int(np.searchsorted(saved, 1 - cost - 1e-12, side="left")) + 1
    medium = np.zeros(len(h.tokens), bool)
    medium[order[: min(k, len(order))]] = True
    return outcome(h, medium)[0]


def random_at_cost(h: HeldOut, cost: float) -> float:
    """Expected quality share of sending each call to medium with the probability that costs
    `cost` in expectation."""
    saving = 1 - h.cost[:, 0].sum() / h.cost[:, 1].sum()
    p = min(max((1 - cost) / saving, 0.0), 1.0) if saving > 0 else 0.0
    return float((p * h.y[:, 0].mean() + (1 - p) * h.y[:, 1].mean()) / h.y[:, 1].mean())


def apgrs(h: HeldOut) -> tuple[float, float]:
    """APGR of the knob's sweep (the score ratio) and of the length rule's."""
    ratio = h.scores[:, 0] / np.maximum(h.scores[:, 1], 1e-9)
    return (sweep_apgr(ratio, h.y[:, 0], h.y[:, 1]),
            sweep_apgr(-h.tokens.astype(float), h.y[:, 0], h.y[:, 1]))


def held_out_sources(data_dir: Path, cache_dir: Path, config: Path | None,
                     seed: int) -> tuple[list[HeldOut], list[HeldOut]]:
    """Per source with medium and large outcomes: the LOSO prior's scores, and the shipped
    model's (in distribution: it was trained on these very train splits)."""
    settings = load_settings(config)
    shipped = load_model(settings.model_dir)
    cache = EmbeddingCache(cache_dir, training_embedder(settings, model_backend(shipped.metadata)))
    outcomes, _ = load_outcomes(data_dir, [])
    table = tier_table(outcomes, settings)
    table = table.subset((table.prompts["split"] == "train").to_numpy())
    data, views = featurise(table, cache)
    dataset = table.prompts["dataset"].astype(str).to_numpy()
    mi, li = table.tiers.index("medium"), table.tiers.index("large")
    both = ~np.isnan(table.labels[:, mi]) & ~np.isnan(table.labels[:, li])
    cost = tier_costs([v.tokens_in for v in views], settings)[:, [mi, li]]
    tokens = np.array([v.tokens_in for v in views])
    recipe = head_recipe(shipped.metadata)
    loso, ins = [], []
    for name in sorted(set(dataset[both])):
        keep = dataset != name
        rows = Featurised(table.subset(keep), data.embeddings[keep], data.numeric[keep])
        prior = fit_final(rows, recipe, seed)
        test = (dataset == name) & both
        sel = np.flatnonzero(test)
        for model, out in ((prior, loso), (shipped, ins)):
            scores, conf = _scores(model, data.embeddings[sel], [views[i] for i in sel],
                                   table.tiers)
            out.append(HeldOut(name, table.prompts["source"].to_numpy()[sel],
                               table.labels[sel][:, [mi, li]], cost[sel], tokens[sel],
                               scores[:, [mi, li]], conf))
    return loso, ins


def _scores(model: RouterModel, emb: np.ndarray, views: list, tiers: list[str]):  # type: ignore[no-untyped-def]
    scores, conf = model.scores_with_confidence(emb, views)
    if conf is None:
        conf = np.ones(len(emb))
    return scores[:, [model.tiers.index(t) for t in tiers]], np.asarray(conf)


def grid(sources: list[HeldOut]) -> list[dict]:
    rows = []
    for t, q, n0 in itertools.product(THRESHOLDS, TARGETS, STRENGTHS):
        per = {h.name: outcome(h, picks_medium(h, t, q, n0)) for h in sources}
        rows.append({"t": t, "q": q, "n0": n0, "per": per,
                     "worst_q": min(v[0] for v in per.values()),
                     "mean_cost": float(np.mean([v[1] for v in per.values()]))})
    return rows


def best(rows: list[dict], floor: float, q: float | None = None,
         n0: float | None = None) -> dict | None:
    """The cheapest rule (mean cost over sources) whose worst source keeps `floor`, among the
    rules with the given knob and prior strength when named."""
    ok = [r for r in rows if r["worst_q"] >= floor and (q is None or r["q"] == q)
          and (n0 is None or r["n0"] == n0)]
    return min(ok, key=lambda r: (round(r["mean_cost"], 4), -r["worst_q"])) if ok else None


def rule_name(r: dict) -> str:
    t = "never" if r["t"] > 1 else f"{r['t']:.2f}"
    return f"t={t} q={r['q']:.2f} n0={r['n0']:g}"


def table_for(sources: list[HeldOut], t: float, q: float, n0: float) -> list[str]:
    lines = ["| held-out source | n | medium/large quality | conf>=t | to medium | quality "
             "vs large | cost vs large | length at that cost | random at that cost |",
             "|---|---|---|---|---|---|---|---|---|"]
    for h in sources:
        medium = picks_medium(h, t, q, n0)
        qs, cs = outcome(h, medium)
        lines.append(f"| {h.name} | {len(h.y)} | {h.y[:, 0].mean() / h.y[:, 1].mean():.3f} | "
                     f"{np.mean(h.conf >= t):.2f} | {medium.mean():.2f} | {qs:.3f} | {cs:.3f} | "
                     f"{length_at_cost(h, cs):.3f} | {random_at_cost(h, cs):.3f} |")
    return lines


def units(sources: list[HeldOut]) -> list[HeldOut]:
    """The held-out sources, RouterBench split into its three tasks (each a kind of traffic)."""
    out = []
    for h in sources:
        if h.name == "routerbench":
            out += [h.subset(h.tasks == task, f"routerbench: {task}")
                    for task in sorted(set(h.tasks))]
        else:
            out.append(h)
    return out


def learned(h: HeldOut, m: int, n0: float, q: float, t: float, repeats: int,
            seed: int, fractional: bool = False) -> tuple[float, float, float]:
    """After `m` outcomes of each tier in each category (task) of `h`, the map's rule per
    category: medium iff the 90% lower bound of medium/large, from the category's mean prior
    scores worth `n0` outcomes plus the `m` outcomes, is at least `q`; a category with fewer
    than 2m calls stays cold (the rule above at threshold `t`). Judged on the calls not learned
    from. `fractional`: a category whose bound r is below `q` still sends the share
    (1 - q) / (1 - r) of its calls, those with the highest prior score ratio, to medium. Returns
    the mean quality share, its 10th percentile over `repeats` draws, and the mean cost share."""
    rng = np.random.default_rng(seed)
    qs, cs = [], []
    for _ in range(repeats):
        medium = picks_medium(h, t, q, math.inf)
        judged = np.ones(len(h.y), bool)
        for task in np.unique(h.tasks):
            rows = np.flatnonzero(h.tasks == task)
            if len(rows) < 2 * m:
                continue
            seen = rng.choice(rows, m, replace=False)
            judged[seen] = False
            post = (n0 * h.scores[rows].mean(axis=0) + h.y[seen].sum(axis=0)) / (n0 + m)
            bound = float(ratio_bound(post[None, :], n0 + m)[0])
            share = 1.0 if bound >= q - 1e-9 else (
                min(max((1 - q) / (1 - bound), 0.0), 1.0) if fractional else 0.0)
            ratio = h.scores[rows, 0] / np.maximum(h.scores[rows, 1], 1e-9)
            best = rows[np.argsort(-ratio, kind="stable")[: int(share * len(rows))]]
            medium[rows] = False
            medium[best] = True
        sub = h.subset(judged, h.name)
        qv, cv = outcome(sub, medium[judged])
        qs.append(qv)
        cs.append(cv)
    return float(np.mean(qs)), float(np.quantile(qs, 0.1)), float(np.mean(cs))


def learned_lines(sources: list[HeldOut], t: float) -> list[str]:
    lines = ["| rule | q | min_outcomes m | prior strength n0 | " + " | ".join(
        f"{h.name} quality (p10) / cost" for h in sources) + " |",
        "|---|---|---|---|" + "---|" * len(sources)]
    for frac, q, m, n0 in itertools.product((False, True), (0.93, 0.95), (10, 30, 60),
                                            (4.0, 10.0, 30.0)):
        cells = [learned(h, m, n0, q, t, 40, 0, frac) for h in sources]
        lines.append(f"| {'fractional' if frac else 'all-or-nothing'} | {q:.2f} | {m} | {n0:g} | "
                     + " | ".join(f"{a:.3f} ({b:.3f}) / {c:.2f}" for a, b, c in cells) + " |")
    return lines


def report(loso: list[HeldOut], ins: list[HeldOut], command: str) -> str:
    by_task = units(loso)
    rows = grid(by_task)
    out = ["# Cold default: leave-one-source-out, two tiers (medium, large)", "",
           f"Command: `{command}`", "",
           "Each source's train split scored by the shipped recipe fitted on every other "
           "source's train split. Rule: medium iff the guard's confidence >= t and the 90% "
           "lower bound of medium/large (each score worth n0 outcomes; inf = the point ratio) "
           ">= q; else large. Quality and cost are shares of always-large's on the same calls.",
           "", "## APGR of the prior's knob (score ratio) vs the length rule", "",
           "| held-out source | n | mean confidence | APGR prior | APGR length |",
           "|---|---|---|---|---|"]
    for h in units(loso) + [h for h in loso if h.name == "routerbench"]:
        a, b = apgrs(h)
        out.append(f"| {h.name} | {len(h.y)} | {h.conf.mean():.2f} | {a:.3f} | {b:.3f} |")
    today = [("today's rule at the shipped knob 0.9 (no confidence gate)", (0.0, 0.9, math.inf)),
             ("today's rule at 0.95 (no confidence gate)", (0.0, 0.95, math.inf))]
    for title, (t, q, n0) in today:
        out += ["", f"## {title}", "", *table_for(by_task, t, q, n0)]
    searches = [(floor, q, n0) for q in (0.95, 0.9) for floor in (0.93, 0.95)
                for n0 in (math.inf,)] + [(0.93, None, None), (0.95, None, None)]
    for floor, q, n0 in searches:
        r = best(rows, floor, q, n0)
        scope = (f"the service's rule (point ratio) at quality_target {q:.2f}" if q is not None
                 else "any rule of the grid")
        out += ["", f"## Cheapest confidence threshold keeping >= {floor:.0%} of large's quality "
                f"on every held-out source: {scope}", ""]
        if r is None:
            out.append("None below always-large.")
            continue
        out += [f"**{rule_name(r)}**: mean cost {r['mean_cost']:.3f} of always-large, worst "
                f"source {r['worst_q']:.3f}.", "", *table_for(by_task, r["t"], r["q"], r["n0"])]
        out += ["", "The same rule on the shipped model's scores (in distribution: it was "
                "trained on these prompts):", "", *table_for(units(ins), r["t"], r["q"],
                                                                 r["n0"])]
    cold = best(rows, 0.95) or best(rows, 0.93)
    t_cold = cold["t"] if cold else 1.01
    out += ["", "## After m outcomes of each tier per category (task), offline", "",
            "Each category's decision from its mean prior scores worth n0 outcomes plus m "
            "outcomes of each tier (both observed, as exploration would give them), 90% lower "
            f"bound of medium/large >= q; smaller categories stay cold (t={t_cold:g}). Judged on "
            "the calls not learned from; 40 draws: mean quality share, its 10th percentile, and "
            "cost share.", "", *learned_lines(by_task, t_cold)]
    out += ["", "## Every rule's worst source (rows: t; columns: q; n0 = inf | 10)", ""]
    out.append("| t \\ q | " + " | ".join(f"{q:.2f}" for q in TARGETS) + " |")
    out.append("|---|" + "---|" * len(TARGETS))
    index = {(r["t"], r["q"], r["n0"]): r for r in rows}
    for t in THRESHOLDS:
        cells = [" \\| ".join(f"{index[(t, q, n0)]['worst_q']:.3f}/"
                              f"{index[(t, q, n0)]['mean_cost']:.2f}" for n0 in (math.inf, 10.0))
                 for q in TARGETS]
        out.append(f"| {t:g} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Cells: worst held-out source's quality share / mean cost share.")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    loso, ins = held_out_sources(args.data_dir, args.cache_dir, args.config, args.seed)
    text = report(loso, ins, "PYTHONPATH=. .venv/bin/python bench/cold_default.py --data-dir "
                  f"{args.data_dir}" + (f" --out {args.out}" if args.out else ""))
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
