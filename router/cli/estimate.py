"""`tier-router spend`'s estimate: the learned map rebuilt from the store's evidence, the
model's embedding clusters from its artifact, and the off-policy figures as a table (the same
numbers as GET /spend's `estimate`, router/traces/estimate.py)."""

from __future__ import annotations

import argparse
from typing import Any

from router.cli.args import integer
from router.config import Settings
from router.schemas import EstimateInterval, PolicyEstimate, SpendEstimate


def add_estimate_options(spend: argparse.ArgumentParser) -> None:
    """The estimate's bounds on `tier-router spend` (GET /spend's, by the same names)."""
    from router.traces.estimate import MAX_ESTIMATE_ROWS

    spend.add_argument("--no-estimate", action="store_true",
                       help="leave out the learned map's off-policy estimate")
    spend.add_argument("--estimate-rows", type=integer(100, MAX_ESTIMATE_ROWS), default=10_000,
                       help="read at most this many labelled decisions for the estimate, the "
                            "newest first (default 10000)")
    spend.add_argument("--estimate-categories", type=integer(0, 100), default=10,
                       help="per-category figures for this many categories (default 10)")
    spend.add_argument("--estimate-resamples", type=integer(0, 2000), default=200,
                       help="bootstrap resamples of the intervals (default 200; 0: none; "
                            "resamples x rows at most 20,000,000)")


def spend_estimate(args: argparse.Namespace, settings: Settings, store: Any
                   ) -> tuple[SpendEstimate | None, str | None]:
    """(the estimate, a note on what it could not use); (None, why) when learning is off."""
    from router.decision.map_fit import fit_map
    from router.traces.estimate import EstimateLimits
    from router.traces.estimate import spend_estimate as estimate
    from router.traces.evidence import EvidenceStore

    if not settings.learning.enabled:
        return None, "no estimate: learning is off (learning.enabled: false)"
    tiers = settings.tier_names
    learned = fit_map(EvidenceStore(store, settings.learning).read(tiers), tiers,
                      settings.learning)
    clusters, note = _clusters(settings)
    limits = EstimateLimits(categories=args.estimate_categories, max_rows=args.estimate_rows,
                            resamples=args.estimate_resamples)
    return estimate(store, settings, learned, clusters, args.since, limits), note


def _clusters(settings: Settings) -> tuple[Any, str | None]:
    """The serving model's embedding clusters, as the service builds them; None (and why) when
    its artifact cannot be read: calls are then decided by their signal categories alone."""
    from router.decision.artifact import load_model
    from router.decision.categories import Clusters
    from router.errors import RouterError

    bits = settings.learning.cluster_bits
    if not bits:
        return None, None
    try:
        model = load_model(settings.model_dir)
    except RouterError as exc:
        return None, (f"the model's clusters are unavailable ({exc}): calls are decided by "
                      "their signal categories alone")
    dimension = int(model.metadata.get("embedder", {}).get("dimension", 0))
    return Clusters(bits, dimension, model.centroids, model.cluster_cut), None


def print_estimate(estimate: SpendEstimate) -> None:
    """The estimate as a table: one row per group, DR with its interval, IPS and SNIPS."""
    e = estimate
    window = "all time" if e.since is None else f"since {e.since:.0f}"
    print(f"estimate (off-policy): the learned map (revision {e.map_revision}) at "
          f"quality_target {e.quality_target:g} against always-strongest; labelled decisions "
          f"{window}, at most {e.max_rows}{' (more in the window)' if e.truncated else ''}; "
          f"{e.mode}; {e.level:.0%} intervals over {e.resamples} resamples")
    rows = [e.overall, *e.categories]
    width = max(24, *(len(_name(r)) for r in rows))
    print(f"{'category':<{width}} {'calls':>7} {'eff.':>7} {'eff.top':>7} {'overlap':>7}  "
          f"{'quality DR':<20} {'IPS':>6} {'SNIPS':>6}  {'cost DR':<20} {'IPS':>6} {'SNIPS':>6}")
    for r in rows:
        head = (f"{_name(r):<{width}} {r.calls:>7} {r.effective_calls:>7.1f} "
                f"{r.strongest_effective_calls:>7.1f} {r.overlap:>7.2f}  ")
        if not r.enough_evidence:
            print(head + "not enough evidence")
            continue
        print(head + f"{_interval(r.quality.dr):<20} {_value(r.quality.ips):>6} "
              f"{_value(r.quality.snips):>6}  {_interval(r.cost.dr):<20} "
              f"{_value(r.cost.ips):>6} {_value(r.cost.snips):>6}")
    print(e.summary)
    if e.skipped:
        print("left out: " + "; ".join(f"{n} {why}" for why, n in sorted(e.skipped.items())))
    print("quality and cost: the map's over always-strongest's; eff.: effective calls of the "
          "map's and always-strongest's weighting; overlap: the share of the map's choices "
          "the log could have made")


def _name(r: PolicyEstimate) -> str:
    return "(every call)" if r.category is None else r.category


def _interval(i: EstimateInterval) -> str:
    if i.value is None:
        return "-"
    if i.low is None or i.high is None:
        return f"{i.value:.3f}"
    return f"{i.value:.3f} [{i.low:.3f}, {i.high:.3f}]"


def _value(i: EstimateInterval) -> str:
    return "-" if i.value is None else f"{i.value:.3f}"
