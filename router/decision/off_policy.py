"""Off-policy estimates of a routing policy's quality and cost, from logged decisions alone.

A logged decision shows how one tier did on one call; what another tier would have done is
never seen. The value of a *target* policy (probabilities per tier for each call) is estimated
by reweighting each call by w = target(logged tier) / propensity(logged tier):

* **IPS**: mean(w x y). Unbiased where the logging policy could take every tier the target
  takes (overlap), high variance where propensities are small.
* **SNIPS**: sum(w x y) / sum(w): a little bias, far less variance.
* **DR** (doubly robust): a direct model q(x, t) of each tier's quality on each call (here the
  learned map's own per-tier prediction), corrected by the weighted residual of the logged
  tier: mean(sum_t target(t) q(x, t) + w (y - q(x, logged))). Unbiased if either the
  propensities or the direct model are right; where the target takes a tier the log never
  could (a propensity-1 call to another tier: w = 0), DR is the direct model alone there.

Always-strongest is itself a policy the log only partly saw: its value is estimated the same
way (weight [logged tier = strongest] / propensity) and the map's figures are ratios of the two,
quality and cost alike, with the same resampled calls in numerator and denominator.

**No overlap.** Where the log took a tier with certainty (propensity 1) the target's
probability of any other tier is known to be unsupported: its share of the target's choices
(``unsupported``, a lower bound where the log also randomised) above ``max_unsupported``
withholds IPS and SNIPS, which would count those choices as worth nothing (IPS) or as the
supported calls' average (SNIPS), both with intervals that look tight; DR stays, saying that
it rests on the direct model for that share, which its interval does not cover.

**Evidence.** The effective number of calls of a weighting is (sum w)^2 / sum w^2; a figure
whose map or always-strongest weighting has fewer than ``min_effective`` is "not enough
evidence", never a number (against what was served, which the log saw whole, the map's alone
counts). **Overlap** is mean(w): in expectation the share of the target's
choices the logging policy could have made (1 with full overlap; the rest only DR's direct
model speaks for); it is itself an estimate, so it can come out a little above 1.

**Intervals**: a Poisson bootstrap over calls (each call weighted by a seeded Poisson(1) count
per resample), percentile intervals; its cost is resamples x calls x a dozen columns, computed
in blocks of rows, so memory stays bounded whatever the number of calls. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# The per-call columns whose sums every figure is a function of, in this order.
ONE, W, WY, WC, DQ, DC, W2, V, VY, VC, EQ, EC, V2, Y, C, GAP = range(16)
N_COLUMNS = 16
ESTIMATORS = ("ips", "snips", "dr")
BLOCK = 4096  # rows per block of the bootstrap's matrix product


@dataclass(frozen=True)
class Logged:
    """Labelled logged decisions as arrays: n calls, T tiers cheapest first (the strongest
    last)."""

    tier: np.ndarray  # (n,) index of the tier that served the call
    propensity: np.ndarray  # (n,) the logging policy's probability of that tier, in (0, 1]
    quality: np.ndarray  # (n,) the label, in [0, 1]
    cost: np.ndarray  # (n,) what the call cost (USD)
    target: np.ndarray  # (n, T) the target policy's probability of each tier
    predicted_quality: np.ndarray  # (n, T) the direct model of each tier's quality
    predicted_cost: np.ndarray  # (n, T) each tier's estimated cost of the call

    def __post_init__(self) -> None:
        n = len(self.tier)
        for name in ("propensity", "quality", "cost"):
            if np.shape(getattr(self, name)) != (n,):
                raise ValueError(f"The '{name}' parameter must have shape ({n},). "
                                 f"Got {np.shape(getattr(self, name))} instead.")
        tiers = np.shape(self.target)[1] if np.ndim(self.target) == 2 else -1
        for name in ("target", "predicted_quality", "predicted_cost"):
            if np.shape(getattr(self, name)) != (n, tiers) or tiers < 1:
                raise ValueError(f"The '{name}' parameter must have shape (n, T) with n = {n}. "
                                 f"Got {np.shape(getattr(self, name))} instead.")
        if n and not (np.all(self.propensity > 0) and np.all(self.propensity <= 1)):
            raise ValueError("The 'propensity' parameter must be in (0, 1]. Got "
                             f"{float(np.min(self.propensity))} to "
                             f"{float(np.max(self.propensity))} instead.")

    def __len__(self) -> int:
        return len(self.tier)


def columns(logged: Logged) -> np.ndarray:
    """(n, N_COLUMNS) per-call terms: the map's weight w and always-strongest's v, each with
    its weighted label and cost, doubly robust terms and squares; the label and cost; the
    target's probability of other tiers where the log took its tier with certainty (GAP)."""
    n = len(logged)
    rows = np.arange(n)
    top = logged.target.shape[1] - 1
    y, c, p = (np.asarray(a, dtype=float) for a in (logged.quality, logged.cost,
                                                    logged.propensity))
    q, k = logged.predicted_quality, logged.predicted_cost
    w = logged.target[rows, logged.tier] / p
    v = (logged.tier == top) / p
    out = np.empty((n, N_COLUMNS))
    out[:, ONE] = 1.0
    out[:, W], out[:, WY], out[:, WC], out[:, W2] = w, w * y, w * c, w * w
    out[:, V], out[:, VY], out[:, VC], out[:, V2] = v, v * y, v * c, v * v
    q_logged, k_logged = q[rows, logged.tier], k[rows, logged.tier]
    out[:, DQ] = np.sum(logged.target * q, axis=1) + w * (y - q_logged)
    out[:, DC] = np.sum(logged.target * k, axis=1) + w * (c - k_logged)
    out[:, EQ] = q[:, top] + v * (y - q_logged)
    out[:, EC] = k[:, top] + v * (c - k_logged)
    out[:, Y], out[:, C] = y, c
    out[:, GAP] = np.where(p >= 1.0, 1.0 - logged.target[rows, logged.tier], 0.0)
    return out


def figures(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Every figure from column sums (..., N_COLUMNS), vectorised over the leading axes: NaN
    where a denominator is 0."""
    s = np.asarray(sums, dtype=float)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)

    snips_map_q, snips_map_c = ratio(s[..., WY], s[..., W]), ratio(s[..., WC], s[..., W])
    snips_top_q, snips_top_c = ratio(s[..., VY], s[..., V]), ratio(s[..., VC], s[..., V])
    return {
        "quality_ips": ratio(s[..., WY], s[..., VY]),
        "quality_snips": ratio(snips_map_q, snips_top_q),
        "quality_dr": ratio(s[..., DQ], s[..., EQ]),
        "cost_ips": ratio(s[..., WC], s[..., VC]),
        "cost_snips": ratio(snips_map_c, snips_top_c),
        "cost_dr": ratio(s[..., DC], s[..., EC]),
        "quality_vs_served": ratio(s[..., DQ], s[..., Y]),
        "cost_vs_served": ratio(s[..., DC], s[..., C]),
        "map_quality": ratio(s[..., DQ], s[..., ONE]),
        "strongest_quality": ratio(s[..., EQ], s[..., ONE]),
        "effective": ratio(s[..., W] ** 2, s[..., W2]),
        "strongest_effective": ratio(s[..., V] ** 2, s[..., V2]),
        "overlap": ratio(s[..., W], s[..., ONE]),
        "unsupported": ratio(s[..., GAP], s[..., ONE]),
    }


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval; None: not enough evidence."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Estimate:
    """One group's figures (a category, or every call)."""

    calls: int
    effective_calls: float  # of the map's weighting
    strongest_effective_calls: float  # of always-strongest's
    overlap: float  # mean weight: the share of the map's choices the log could have made
    unsupported: float  # the share of the map's choices the log certainly could not have made
    enough: bool
    note: str | None
    quality: dict[str, Interval] = field(default_factory=dict)  # relative to always-strongest
    cost: dict[str, Interval] = field(default_factory=dict)  # by estimator
    served_quality: float | None = None  # what the logged tiers realised, per call
    served_cost_usd: float | None = None
    quality_vs_served: Interval = Interval(None)  # DR, the map over what was served
    cost_vs_served: Interval = Interval(None)


def estimate(logged: Logged, groups: np.ndarray | None = None, n_groups: int = 0,
             resamples: int = 200, level: float = 0.95, min_effective: float = 10.0,
             seed: int = 0, max_unsupported: float = 0.05) -> tuple[Estimate, list[Estimate]]:
    """(every call's estimate, one per group 0..n_groups-1 of `groups`); calls of a group
    outside that range count overall only. `resamples` 0: no intervals."""
    if resamples < 0:
        raise ValueError(f"The 'resamples' parameter must be an int >= 0. Got {resamples} "
                         "instead.")
    if not 0 < level < 1:
        raise ValueError(f"The 'level' parameter must be a float in (0, 1). Got {level} "
                         "instead.")
    x = columns(logged)
    g = np.full(len(logged), -1) if groups is None else np.asarray(groups, dtype=np.int64)
    sums = np.zeros((n_groups + 1, N_COLUMNS))
    sums[0] = x.sum(axis=0)
    inside = (g >= 0) & (g < n_groups)
    np.add.at(sums, g[inside] + 1, x[inside])
    boot = bootstrap_sums(x, g, n_groups, resamples, seed) if resamples else None
    out = [_summarise(sums[i], None if boot is None else boot[i], level, min_effective,
                      max_unsupported) for i in range(n_groups + 1)]
    return out[0], out[1:]


def bootstrap_sums(x: np.ndarray, groups: np.ndarray, n_groups: int, resamples: int,
                   seed: int) -> np.ndarray:
    """(n_groups + 1, resamples, N_COLUMNS): the column sums of each Poisson resample, every
    call first, then per group; rows in blocks of BLOCK, so memory is resamples x BLOCK."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_groups + 1, resamples, x.shape[1]))
    for start in range(0, len(x), BLOCK):
        block, g = x[start:start + BLOCK], groups[start:start + BLOCK]
        counts = rng.poisson(1.0, size=(resamples, len(block))).astype(float)
        out[0] += counts @ block
        for k in np.unique(g[(g >= 0) & (g < n_groups)]):
            mine = g == k
            out[k + 1] += counts[:, mine] @ block[mine]
    return out


def _summarise(sums: np.ndarray, boot: np.ndarray | None, level: float,
               min_effective: float, max_unsupported: float) -> Estimate:
    point = {k: float(v) for k, v in figures(sums).items()}
    spread = figures(boot) if boot is not None else None
    n = int(round(sums[ONE]))
    effective = _finite(point["effective"])
    strongest = _finite(point["strongest_effective"])
    unsupported = _finite(point["unsupported"])
    enough = n > 0 and min(effective, strongest) >= min_effective
    weighted = enough and unsupported <= max_unsupported  # IPS and SNIPS are sound
    note = None
    if n == 0:
        note = "no labelled decisions"
    elif not enough:
        note = (f"not enough evidence: {effective:.1f} effective calls for the map and "
                f"{strongest:.1f} for always-strongest (at least {min_effective:g} needed)")
    elif not weighted:
        note = (f"no overlap on {unsupported:.0%} of the map's choices (the log took another "
                "tier with certainty): IPS and SNIPS withheld; DR rests on the map's own "
                "estimate there, which its interval does not cover")

    def interval(name: str, known: bool = enough) -> Interval:
        if not known or not math.isfinite(point[name]):
            return Interval(None)
        if spread is None:
            return Interval(round(point[name], 4))
        low, high = _percentiles(spread[name], level)
        return Interval(round(point[name], 4), low, high)

    return Estimate(
        calls=n, effective_calls=round(effective, 2), strongest_effective_calls=round(strongest, 2),
        overlap=round(_finite(point["overlap"]), 4), enough=enough, note=note,
        unsupported=round(unsupported, 4),
        quality={e: interval(f"quality_{e}", weighted if e != "dr" else enough)
                 for e in ESTIMATORS},
        cost={e: interval(f"cost_{e}", weighted if e != "dr" else enough) for e in ESTIMATORS},
        served_quality=round(sums[Y] / n, 4) if n else None,
        served_cost_usd=round(sums[C] / n, 8) if n else None,
        quality_vs_served=interval("quality_vs_served", n > 0 and effective >= min_effective),
        cost_vs_served=interval("cost_vs_served", n > 0 and effective >= min_effective))


def _percentiles(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """The central `level` interval of the finite resampled values; None when under half of
    the resamples give a value (a denominator of 0)."""
    finite = values[np.isfinite(values)]
    if len(finite) < max(len(values) / 2, 1):
        return None, None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return round(float(low), 4), round(float(high), 4)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def rank_groups(names: Sequence[str | None], limit: int) -> tuple[np.ndarray, list[str]]:
    """Group ids for the `limit` most frequent names (most calls first, then by name), -1 for
    the rest and for None."""
    counts: dict[str, int] = {}
    for name in names:
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    top = sorted(counts, key=lambda k: (-counts[k], k))[:limit]
    index = {name: i for i, name in enumerate(top)}
    ids = np.array([index.get(name, -1) if name is not None else -1 for name in names],
                   dtype=np.int64)
    return ids, top
