"""How often each tier's answers pass the caller's check, per category, and how good they are
when they pass: the learned map's check evidence, for verifiable calls.

**Evidence.** For each (key namespace, category, tier) the store keeps, decayed like the map's
evidence (router/traces/evidence.py, rows of ``learning_evidence`` whose tier is marked
``check:<tier>``), in the map's column layout (`learned_map.COLUMNS`): ``n`` checks run,
``y`` of them passed, ``w`` passed answers whose quality was labelled and ``wy`` the sum of
those labels, ``total`` the checks run, undecayed. A check is run on a decision once: a failed
one is an escalation with a check's reason (or a /verify or /feedback saying it failed), a
passed one a /verify or /feedback saying so.

**Posterior.** Per category and tier, a Beta for the pass rate and one for the quality of a
passed answer. At a key's root the prior is uniform (worth two checks); below it, the parent's
posterior mean worth ``prior_strength`` checks (a sparse fine category borrows from its
parent). With ``share_across_keys`` each category is also pooled over keys into the ``*``
namespace, no key supplying more than half of it (`map_fit.shared_evidence`, the map's rule).
Each Beta keeps its mean and one-sided bounds at the map's ``bound`` level (Wilson on the
posterior's counts, as `acceptance.lower_bound`).

**Which category** (`CheckMap.find`): the call's finest category with at least
``min_outcomes`` checks run, in the map's lookup order (signals, cluster, root; own key, then
shared). Without one a verifiable call goes direct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from router.config import LearningConfig
from router.decision.acceptance import lower_bound
from router.decision.categories import (
    ROOT,
    SHARED,
    Signals,
    depth_of,
    key_name,
    lookup_paths,
    parent_of,
)
from router.decision.learned_map import WY, CategoryKey, N, W, Y, category_name
from router.decision.map_fit import shared_evidence

CHECK_MARK = "check:"  # the tier column of a check evidence row: check:<tier>
RUNS, PASSED, LABELLED, PASSED_QUALITY = N, Y, W, WY  # the columns check rows use
ROOT_PRIOR = 2.0  # checks a root's uniform prior is worth


@dataclass(frozen=True)
class CheckEntry:
    """One category's check posteriors, per tier (cheapest first)."""

    runs: float  # decayed checks run, every tier
    tier_runs: tuple[float, ...]  # decayed checks run per tier
    pass_rate: tuple[float, ...]  # posterior mean of the pass rate
    pass_upper: tuple[float, ...]  # its upper bound (at the map's bound level)
    passed_quality: tuple[float, ...]  # posterior mean quality of a passed answer
    passed_lower: tuple[float, ...]  # its lower bound


@dataclass(frozen=True)
class CheckMap:
    """Every category's check posteriors; empty: no verifiable call is planned cheap first."""

    tiers: tuple[str, ...]
    config: LearningConfig
    entries: Mapping[CategoryKey, CheckEntry] = field(default_factory=dict)

    def find(self, signals: Signals, cluster: str | None
             ) -> tuple[CheckEntry | None, str | None]:
        """(the finest entry with min_outcomes checks run, its name), or (None, None)."""
        namespaces = ((key_name(signals.key), SHARED) if self.config.share_across_keys
                      else (key_name(signals.key),))
        for path in lookup_paths(signals, self.config.category_fields, cluster):
            for namespace in namespaces:
                entry = self.entries.get((namespace, path))
                if entry is not None and entry.runs >= self.config.min_outcomes:
                    return entry, category_name(namespace, path)
        return None, None

    def snapshot(self, limit: int = 50) -> list[dict[str, object]]:
        """The busiest categories' check evidence, as an operator reads it."""
        busiest = sorted(self.entries.items(), key=lambda kv: -kv[1].runs)[:limit]
        return [{"category": category_name(*key), "checks": round(e.runs, 2),
                 "pass_rate": [round(v, 4) for v in e.pass_rate],
                 "passed_quality": [round(v, 4) for v in e.passed_quality]}
                for key, e in busiest]


def empty_checks(tiers: Sequence[str], config: LearningConfig) -> CheckMap:
    return CheckMap(tuple(tiers), config)


def fit_checks(evidence: Mapping[CategoryKey, np.ndarray], tiers: Sequence[str],
               config: LearningConfig) -> CheckMap:
    """The check posteriors of `evidence` ((T, len(COLUMNS)) per category, check columns):
    every key's root and the ``max_categories`` categories with most checks (a dropped one's
    calls use a coarser one). Pure: the same evidence, the same map."""
    evidence = {k: np.asarray(v, dtype=float) for k, v in evidence.items()}
    if config.share_across_keys:
        evidence.update(shared_evidence(evidence))
    entries: dict[CategoryKey, CheckEntry] = {}
    keys = sorted(evidence, key=lambda k: (depth_of(k[1]), k))
    busiest = sorted((k for k in keys if k[1] != ROOT), key=lambda k: -evidence[k][:, RUNS].sum())
    live = set(busiest[:config.max_categories]) | {k for k in keys if k[1] == ROOT}
    for key in keys:  # coarse to fine: a parent is fitted before its children
        if key not in live:
            continue
        parent = _parent(entries, key)
        entries[key] = _entry(evidence[key], parent, config)
    return CheckMap(tuple(tiers), config, entries)


def _parent(entries: Mapping[CategoryKey, CheckEntry], key: CategoryKey) -> CheckEntry | None:
    namespace, path = key
    if path == ROOT:
        return None
    up = parent_of(path)
    while up is not None:
        if (namespace, up) in entries:
            return entries[(namespace, up)]
        up = parent_of(up)
    return None


def _entry(values: np.ndarray, parent: CheckEntry | None, config: LearningConfig
           ) -> CheckEntry:
    runs, passed = values[:, RUNS], values[:, PASSED]
    labelled, quality = values[:, LABELLED], values[:, PASSED_QUALITY]
    tiers = len(values)
    if parent is None:
        weight = ROOT_PRIOR
        pass_prior, quality_prior = [0.5] * tiers, [0.5] * tiers
    else:
        weight = config.prior_strength
        pass_prior, quality_prior = list(parent.pass_rate), list(parent.passed_quality)
    level = config.bound
    rate, upper, good, lower = [], [], [], []
    for t in range(tiers):
        a = weight * pass_prior[t] + float(passed[t])
        n = weight + float(runs[t])
        rate.append(a / n)
        upper.append(1.0 - lower_bound(n - a, n, level))
        qa = weight * quality_prior[t] + float(quality[t])
        qn = weight + float(labelled[t])
        good.append(qa / qn)
        lower.append(lower_bound(qa, qn, level))
    return CheckEntry(runs=float(runs.sum()), tier_runs=tuple(float(r) for r in runs),
                      pass_rate=tuple(rate), pass_upper=tuple(upper),
                      passed_quality=tuple(good), passed_lower=tuple(lower))

