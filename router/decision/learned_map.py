"""The deployment's learned routing map: each category's quality per tier, with uncertainty, and
the rule that turns it into a tier. Pure and frozen: `fit_map` builds a `LearnedMap` from
evidence aggregates; the serving layer swaps the whole object when it rebuilds one.

**Evidence.** For each (key namespace, category, tier) the store keeps sums over labelled
outcomes (`COLUMNS`), decayed to the instant of the fit (router/traces/evidence.py): the
served tier's weights w = 1/propensity (clipped), w x label and w^2, and unweighted counts,
labels and the model's score of the served tier (for recalibration), and the model's score of
every tier over every outcome of the category (the category's mean score).

**Posterior.** Per category and tier, a Beta whose mean is the inverse-propensity-weighted
success rate with the effective number of outcomes (sum w)^2 / sum w^2, and whose prior is
worth ``prior_strength`` outcomes: at a key's root, the model's recalibrated mean score of the
category; below it, the parent's posterior moved by the model's own difference between the two
(a sparse fine category borrows from its parent, the parent from the prior). The lower bound is
the ``1 - bound`` quantile of the posterior's ratio to the strongest tier (Monte Carlo, seeded).

**The rule** (`assess`): the call's finest category with at least ``min_outcomes`` outcomes
decides: each tier's bound, shifted by the call's own score ratio minus the category's mean
ratio (``score_weight``, 0 by default: held out, the model's per-call scores rank no better than
length, so a shift would move calls across the bar on noise, the winner's curse);
`policy.decide` then takes the cheapest tier whose bound is at least ``quality_target``, the
base tier c.

**The fractional allowance**: a category whose cheaper tier t has a bound b_t below the target q
still spends its allowance: a share p = (b_c - q) / (b_c - b_t) of its calls goes to t, so the
expected relative quality p x b_t + (1 - p) x b_c stays at q (b_c = 1 for the strongest tier);
among several cheaper tiers, the one that saves most, p x (cost_c - cost_t). Which calls go is a
random draw (`Verdict.split`; `policy.explore_step` draws it from the service's seeded generator
and logs its propensity, so the posterior learns from both tiers), never ranked by the call's
own score. Only with exploration on (a draw); a dry run, a shadow call, or exploration off takes
the base tier: the tier that is safe for every call, not a sample. Without a category of
``min_outcomes`` the model's scores decide alone only where its confidence is at least
``prior_confidence``; else the call goes to the strongest tier (or ``cold_tier``).
**Exploration** is Thompson sampling on the same posterior: the share of draws in which a
cheaper tier would pass is its probability of being tried, so it goes where a cheaper tier's
bound is near the target and nowhere it is clearly below; its expected quality loss under the
posterior (so an unknown tier counts as costly) is capped at ``explore_cost`` of the strongest
tier's quality per call, and a category decided below the strongest tier sends ``probe_share``
of its calls back there, so a change of model or traffic shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from router.config import LearningConfig
from router.decision.categories import SHARED, Signals, key_name, lookup_paths

if TYPE_CHECKING:
    from router.decision.checks import CheckMap

# The evidence columns of one (namespace, category, tier), in this order.
W, WY, W2, N, Y, P, S, SN, TOTAL = range(9)
COLUMNS = ("w", "wy", "w2", "n", "y", "p", "s", "sn", "total")
EXPLORE_DRAWS = 64  # posterior ratio draws per tier kept for exploration
OFFSET = 4.0  # tier t's sorted draws sit at t x OFFSET in one array (ratios are below 2)
EPS = 1e-4
CategoryKey = tuple[str, str]  # (key namespace, category path)


@dataclass(frozen=True, eq=False)
class Entry:
    """One category's posterior, per tier (cheapest first)."""

    outcomes: float  # decayed labelled outcomes, every tier
    quality: tuple[float, ...]  # posterior mean quality
    ratio: tuple[float, ...]  # posterior mean quality over the strongest tier's
    bound: tuple[float, ...]  # lower bound of that ratio (the strongest tier: 1)
    score: tuple[float, ...]  # the model's recalibrated mean score in the category
    score_ratio: tuple[float, ...]
    evidence: tuple[float, ...]  # effective outcomes per tier
    draws: np.ndarray  # (T x EXPLORE_DRAWS,) each tier's ratio draws sorted, + t x OFFSET
    sums: np.ndarray  # running sums of the draws (without the offsets) in that order, from 0
    upper: tuple[float, ...] = ()  # upper bound of the ratio, at the same level as `bound`
    labelled: tuple[float, ...] = ()  # labelled outcomes per tier since the last reset


@dataclass(frozen=True)
class Verdict:
    """What the map says about one call: the policy reads `bounds` and `explore`."""

    bounds: tuple[float, ...]  # lower bound of each tier's quality relative to the strongest
    quality: tuple[float, ...]  # each tier's predicted quality for this call
    explore: tuple[float, ...]  # probability of trying each tier instead
    category: str | None  # the category that decided; None: cold
    detail: str | None  # why, unless the model's scores decided alone
    split: tuple[int, int, float] | None = None  # (base tier, cheaper tier, share sent to it)


@dataclass(frozen=True)
class LearnedMap:
    """Every live category's posterior and the recalibration of the model's scores."""

    tiers: tuple[str, ...]
    config: LearningConfig
    entries: Mapping[CategoryKey, Entry] = field(default_factory=dict)
    calibration: tuple[float, ...] = ()  # logit shift per tier
    revision: int = 0  # labelled outcomes learned since the last reset
    dropped: int = 0  # categories beyond max_categories (their calls use a coarser one)
    moved: tuple[str, ...] = ()  # categories whose relative quality moved at this rebuild
    totals: np.ndarray = field(default_factory=lambda: np.zeros((0, len(COLUMNS))))  # roots
    checks: CheckMap | None = None  # verifiable calls' check evidence (decision/checks.py)

    def calibrate(self, scores: Sequence[float]) -> list[float]:
        """Each tier's score through its recalibration (a shift in logit space)."""
        shifts = self.calibration or (0.0,) * len(scores)
        return [_sigmoid(_logit(float(s)) + a) for s, a in zip(scores, shifts, strict=True)]

    def namespaces(self, key: str | None) -> tuple[str, ...]:
        own = key_name(key)
        return (own, SHARED) if self.config.share_across_keys else (own,)

    def find(self, signals: Signals, cluster: str | None
             ) -> tuple[Entry | None, str | None, Entry | None]:
        """(the deciding entry, its name, the finest entry with any evidence)."""
        sparse = None
        for path in lookup_paths(signals, self.config.category_fields, cluster):
            for namespace in self.namespaces(signals.key):
                entry = self.entries.get((namespace, path))
                if entry is None:
                    continue
                if entry.outcomes >= self.config.min_outcomes:
                    return entry, category_name(namespace, path), sparse or entry
                sparse = sparse or entry
        return None, None, sparse

    def assess(self, signals: Signals, cluster: str | None, scores: Sequence[float],
               confidence: float, target: float, explore_rate: float = 0.0,
               costs: Sequence[float] = ()) -> Verdict:
        """The map's verdict on one call (module docstring); `explore_rate` 0: no exploration
        (a dry run, a shadow call, exploration off); `costs`: each tier's estimated cost of the
        call (default: its rank), which cheaper tier the allowance goes to. Plain floats: T is
        small and this runs on every /route call."""
        p = [min(max(v, EPS), 1 - EPS) for v in self.calibrate(scores)]
        top = len(p) - 1
        call_ratio = [v / p[top] for v in p]
        entry, name, sparse = self.find(signals, cluster)
        source = entry or sparse
        shift = [0.0] * len(p)
        if source is not None:
            weight = self.config.score_weight
            shift = [weight * (c - r) for c, r in zip(call_ratio, source.score_ratio,
                                                      strict=True)]
            shift[top] = 0.0
        if entry is not None:
            bounds = [min(b + s, 1.0) for b, s in zip(entry.bound, shift, strict=True)]
            weight = self.config.score_weight
            quality = [min(max(q + weight * (v - m), 0.0), 1.0)
                       for q, v, m in zip(entry.quality, p, entry.score, strict=True)]
            detail: str | None = self._evidence_detail(entry, name or "", bounds, shift,
                                                      target)
        else:
            quality = p
            bounds, detail = self._cold(call_ratio, confidence)
        bounds[top] = 1.0
        split = None
        if entry is not None:
            split = self._split(bounds, target, costs)
            if split is not None:
                _, cheap, share = split
                detail = (f"{detail}; {share:.0%} of calls to {self.tiers[cheap]} (its "
                          f"{self.config.bound:.0%} bound {bounds[cheap]:.2f}) keep {target:g}")
        explore = (self._explore(bounds, source, shift, call_ratio, p, target, explore_rate)
                   if explore_rate > 0 and target < 1.0 else (0.0,) * len(p))
        return Verdict(tuple(bounds), tuple(quality), explore, name, detail, split)

    def _split(self, bounds: list[float], target: float, costs: Sequence[float]
               ) -> tuple[int, int, float] | None:
        """The fractional allowance (module docstring): (base tier c, cheaper tier t, share p
        of calls to t) with p x b_t + (1 - p) x b_c = target, the t saving most; None when no
        cheaper tier can take a share."""
        if target >= 1.0:
            return None
        base = next(i for i, b in enumerate(bounds) if b >= target - 1e-9)
        price = list(costs) if costs else list(range(len(bounds)))
        best, saving = None, 0.0
        for t in range(base):
            share = min(max((bounds[base] - target) / (bounds[base] - bounds[t]), 0.0), 1.0)
            share = round(share, 6)  # the propensity logged, as drawn
            if share > 0 and share * (price[base] - price[t]) > saving:
                best, saving = (base, t, share), share * (price[base] - price[t])
        return best

    def _evidence_detail(self, entry: Entry, name: str, bounds: list[float],
                         shift: list[float], target: float) -> str:
        """The deciding category and its evidence in words, e.g. ``task extract_fields: medium
        0.97 of large [0.93, 0.99] over 212 outcomes``: the cheapest tier that passes the
        target (or, when none below the strongest does, the one nearest to it), its estimated
        quality relative to the strongest tier for this call and its interval."""
        top = len(bounds) - 1
        chosen = next((i for i, b in enumerate(bounds) if b >= target - 1e-9), top)
        shown = chosen if chosen < top else max(top - 1, 0)
        if shown == top:  # one tier only
            return f"{describe_category(name)}: over {entry.outcomes:.0f} outcomes"
        ratio = min(entry.ratio[shown] + shift[shown], 2.0)
        upper = entry.upper[shown] + shift[shown] if entry.upper else ratio
        text = (f"{describe_category(name)}: {self.tiers[shown]} {ratio:.2f} of "
                f"{self.tiers[top]} [{bounds[shown]:.2f}, {min(upper, 2.0):.2f}] over "
                f"{entry.outcomes:.0f} outcomes")
        return text if chosen < top else f"{text}, below the target {target:g}"

    def _cold(self, call_ratio: list[float], confidence: float
              ) -> tuple[list[float], str | None]:
        """Bounds without a category of min_outcomes: the prior where it is confident, else
        the strongest tier (or cold_tier)."""
        config = self.config
        threshold = config.prior_confidence
        if threshold is not None and (threshold <= 0 or confidence >= threshold):
            return [min(r, 1.0) for r in call_ratio], None  # the model's scores decide
        tier = config.cold_tier or self.tiers[-1]
        bounds = [1.0 if name == tier else 0.0 for name in self.tiers]
        why = ("" if threshold is None else
               f"; the model's confidence {_conf(confidence)} < prior_confidence {threshold}")
        return bounds, (f"no category has {config.min_outcomes} outcomes yet{why}: "
                        f"{'cold_tier' if config.cold_tier else 'the strongest tier'} '{tier}'")

    def _explore(self, bounds: list[float], source: Entry | None, shift: list[float],
                 call_ratio: list[float], p: list[float], target: float, rate: float
                 ) -> tuple[float, ...]:
        """Per tier, the probability of trying it instead of the bounds' choice: how often the
        posterior puts it first among the tiers that pass (Thompson sampling; a stronger tier
        where the chosen one might not pass), the cheaper tiers scaled so their expected loss
        stays within explore_cost; probes of the strongest tier; at most `rate` in all."""
        n, top = len(bounds), len(bounds) - 1
        chosen = next(i for i, b in enumerate(bounds) if b >= target - 1e-9)
        passing, loss = self._chances(source, shift, call_ratio, p, target, chosen)
        passing.append(1.0)  # the strongest tier is the bar itself
        first, fails = [0.0] * n, 1.0
        for t in range(n):
            first[t] = passing[t] * fails
            fails *= 1.0 - passing[t]
        down = first[:chosen]
        cost = sum(e * c for e, c in zip(down, loss, strict=True))
        if cost > self.config.explore_cost:
            down = [e * self.config.explore_cost / cost for e in down]
        up = first[chosen + 1:]
        if chosen < top:
            up[-1] = max(up[-1], self.config.probe_share)
        explore = [*down, 0.0, *up]
        total = sum(explore)
        if total > rate:
            explore = [e * rate / total for e in explore]
        return tuple(round(e, 6) for e in explore)  # the propensities logged, as drawn

    def _chances(self, source: Entry | None, shift: list[float], call_ratio: list[float],
                 p: list[float], target: float, chosen: int) -> tuple[list[float], list[float]]:
        """For each tier below the strongest, the posterior probability that its ratio passes
        the target; for each below `chosen`, its expected loss against the chosen tier
        (E[max(0, chosen - it)])."""
        top = len(p) - 1
        if source is not None:
            x = 1.0 if chosen == top else source.ratio[chosen] + shift[chosen]
            k = EXPLORE_DRAWS
            marks = [target - shift[t] + OFFSET * t for t in range(top)]
            marks += [x - shift[t] + OFFSET * t for t in range(chosen)]
            at = np.searchsorted(source.draws, marks).tolist()
            sums = source.sums
            passing = [1.0 - (at[t] - t * k) / k for t in range(top)]
            loss = []
            for t in range(chosen):
                i, below = at[top + t], at[top + t] - t * k
                loss.append((below * (x - shift[t]) - float(sums[i] - sums[t * k])) / k)
            return passing, loss
        # no evidence at all: the prior as a normal worth prior_strength outcomes
        x = 1.0 if chosen == top else call_ratio[chosen]
        m = self.config.prior_strength
        passing, loss = [], []
        for t in range(top):
            mu = call_ratio[t]
            sd = max(math.sqrt(p[t] * (1 - p[t]) / (m + 1)) / p[top], EPS)
            passing.append(1.0 - _phi((target - mu) / sd))
            if t < chosen:
                z = (x - mu) / sd
                loss.append((x - mu) * _phi(z)
                            + sd * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
        return passing, loss

    def snapshot(self, limit: int = 50) -> dict[str, object]:
        """What an operator inspects: the busiest categories' estimates, each tier's outcomes
        and recalibration, the categories that moved."""
        busiest = sorted(self.entries.items(), key=lambda kv: -kv[1].outcomes)[:limit]
        tiers = {}
        for t, name in enumerate(self.tiers):
            row = self.totals[t] if len(self.totals) else np.zeros(len(COLUMNS))
            n = float(row[N])
            tiers[name] = {"outcomes": int(round(float(row[TOTAL]))),
                           "realised": round(float(row[Y] / n), 4) if n > 0 else None,
                           "predicted": round(float(row[P] / n), 4) if n > 0 else None,
                           "calibration": round(self.calibration[t], 4)
                           if self.calibration else 0.0}
        return {
            "revision": self.revision,
            "categories": len(self.entries),
            "dropped_categories": self.dropped,
            "moved": list(self.moved),
            "tiers": tiers,
            "top": [{"category": category_name(*key), "outcomes": round(e.outcomes, 2),
                     "quality": _round(e.quality), "ratio": _round(e.ratio),
                     "lower_bound": _round(e.bound), "evidence": _round(e.evidence)}
                    for key, e in busiest],
        }


def moved_categories(before: LearnedMap, after: LearnedMap) -> tuple[str, ...]:
    """The categories (with min_outcomes in both maps) whose ratio of some tier to the
    strongest moved by more than ``drift`` between two rebuilds: the drift watch."""
    least, moved = after.config.min_outcomes, []
    for key, entry in after.entries.items():
        old = before.entries.get(key)
        if old is None or old.outcomes < least or entry.outcomes < least:
            continue
        if len(old.ratio) == len(entry.ratio) and max(
                abs(a - b) for a, b in zip(entry.ratio, old.ratio, strict=True)) > (
                after.config.drift):
            moved.append(category_name(*key))
    return tuple(sorted(moved))


def describe_category(name: str) -> str:
    """A category's name in words: its finest level (``task extract_fields``, ``cluster 3``),
    the key's whole traffic for a root; ``(shared)`` when learned from every key."""
    namespace, _, path = name.partition("/")
    shared = " (shared)" if namespace == SHARED else ""
    if not path:
        return f"all of key {namespace}'s calls" if namespace not in ("-", SHARED) else (
            f"all calls{shared}")
    field, _, value = path.rsplit("/", 1)[-1].partition(":")
    return f"{field} {value.split('@', 1)[0]}{shared}"


def category_name(namespace: str, path: str) -> str:
    """How a category is named: ``key/role:r/task:t`` (``-`` for calls without a key)."""
    return f"{namespace or '-'}/{path}" if path else f"{namespace or '-'}"


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _phi(z: float) -> float:
    """The standard normal's distribution function."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _round(values: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def _conf(confidence: float) -> str:
    return "unknown" if math.isnan(confidence) else f"{confidence:.2f}"
