"""Pure evaluation maths for `tier-router evaluate`: operating points, quality/cost curves,
RouteLLM's APGR and CPT, cost at a quality target, baselines, calibration and bootstrap CIs.

Inputs are numpy arrays over n evaluation prompts and T tiers (cheapest first):
`quality` (n, T) realised quality in [0, 1], NaN where a tier was not observed;
`cost` (n, T) cost in USD; `choice` (n,) the index of the tier chosen for each prompt.
Nothing here reads files, draws or knows about the classifier or the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "OperatingPoint",
    "ReliabilityTable",
    "apgr",
    "bootstrap_ci",
    "cost_at_quality",
    "cpt",
    "curve_arrays",
    "expected_calibration_error",
    "oracle_choice",
    "pgr_curve",
    "random_mixture_curve",
    "reliability_table",
    "routed_point",
    "savings_at_quality_fraction",
]


@dataclass(frozen=True)
class OperatingPoint:
    """Where one setting of the knob lands: mean quality, mean cost and traffic share per tier.

    Means are over the prompts whose chosen tier was observed; `n_unobserved` counts the rest
    so that a point resting on few labels is visible instead of silently optimistic.
    """

    mean_quality: float
    mean_cost: float
    share: np.ndarray
    n_unobserved: int = 0


@dataclass(frozen=True)
class ReliabilityTable:
    """Per-bin calibration summary; empty bins have count 0 and NaN means."""

    bin_centers: np.ndarray
    mean_predicted: np.ndarray
    mean_realised: np.ndarray
    counts: np.ndarray


def _param_error(name: str, expected: str, value: object) -> ValueError:
    return ValueError(f"The '{name}' parameter must be {expected}. Got {value!r} instead.")


def _as_2d(name: str, array: np.ndarray) -> np.ndarray:
    out = np.asarray(array, dtype=float)
    if out.ndim != 2 or out.shape[0] == 0 or out.shape[1] == 0:
        raise _param_error(name, "a non-empty 2-D array of shape (n, T)", out.shape)
    return out


def _as_1d(name: str, array: np.ndarray | Sequence[float]) -> np.ndarray:
    out = np.asarray(array, dtype=float)
    if out.ndim != 1 or out.size == 0:
        raise _param_error(name, "a non-empty 1-D array", out.shape)
    return out


def _check_same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"The arrays must have the same length. Got {lengths} instead.")


def routed_point(quality: np.ndarray, cost: np.ndarray, choice: np.ndarray) -> OperatingPoint:
    """Mean realised quality and cost when each prompt goes to `choice[i]`."""
    quality, cost = _as_2d("quality", quality), _as_2d("cost", cost)
    if quality.shape != cost.shape:
        raise _param_error("cost", f"an array of shape {quality.shape}", cost.shape)
    choice = np.asarray(choice)
    n_prompts, n_tiers = quality.shape
    if choice.shape != (n_prompts,) or not np.issubdtype(choice.dtype, np.integer):
        raise _param_error("choice", f"an integer array of shape ({n_prompts},)", choice.shape)
    bad = choice[(choice < 0) | (choice >= n_tiers)]
    if bad.size:
        raise _param_error("choice", f"tier indices in [0, {n_tiers - 1}]", int(bad[0]))
    rows = np.arange(n_prompts)
    q, c = quality[rows, choice], cost[rows, choice]
    observed = ~np.isnan(q)
    share = np.bincount(choice, minlength=n_tiers) / n_prompts
    if not observed.any():
        return OperatingPoint(np.nan, np.nan, share, n_prompts)
    return OperatingPoint(
        mean_quality=float(q[observed].mean()),
        mean_cost=float(np.nanmean(c[observed])),
        share=share,
        n_unobserved=int((~observed).sum()),
    )


def curve_arrays(points: Sequence[OperatingPoint]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a swept curve into (costs, qualities, share of the strongest tier) arrays."""
    if len(points) == 0:
        raise _param_error("points", "a non-empty sequence of OperatingPoint", points)
    costs = np.array([p.mean_cost for p in points], dtype=float)
    qualities = np.array([p.mean_quality for p in points], dtype=float)
    strong_share = np.array([p.share[-1] for p in points], dtype=float)
    return costs, qualities, strong_share


def pgr_curve(quality: np.ndarray | Sequence[float], q_weak: float, q_strong: float) -> np.ndarray:
    """Performance gap recovered per point: (q - q_weak) / (q_strong - q_weak).

    All NaN when q_strong <= q_weak: there is no gap to recover, so the ratio means nothing.
    """
    quality = _as_1d("quality", quality)
    if not q_strong > q_weak:
        return np.full(quality.shape, np.nan)
    return (quality - q_weak) / (q_strong - q_weak)


def _share_curve(
    strong_share: np.ndarray | Sequence[float],
    quality: np.ndarray | Sequence[float],
    q_weak: float,
    q_strong: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, de-duplicated (share, PGR) points anchored at (0, 0) and (1, 1) when missing."""
    share, quality = _as_1d("strong_share", strong_share), _as_1d("quality", quality)
    _check_same_length(strong_share=share, quality=quality)
    if np.isnan(share).any() or share.min() < 0 or share.max() > 1:
        raise _param_error("strong_share", "an array of shares in [0, 1]", share)
    keep = ~np.isnan(quality)
    share, quality = share[keep], quality[keep]
    if not np.isclose(share, 0.0).any():
        share, quality = np.append(share, 0.0), np.append(quality, q_weak)
    if not np.isclose(share, 1.0).any():
        share, quality = np.append(share, 1.0), np.append(quality, q_strong)
    xs, inverse = np.unique(share, return_inverse=True)
    mean_quality = np.bincount(inverse, weights=quality) / np.bincount(inverse)
    return xs, pgr_curve(mean_quality, q_weak, q_strong)


def apgr(
    strong_share: np.ndarray | Sequence[float],
    quality: np.ndarray | Sequence[float],
    q_weak: float,
    q_strong: float,
) -> float:
    """Average performance gap recovered: the area under PGR against the strong-call share.

    Follows RouteLLM (Ong et al., arXiv 2406.18665, section on metrics; the reference code in
    lm-sys/RouteLLM `routellm/evals/evaluate.py::apgr_metric` computes the same area as
    (AUC - weak_AUC) / (strong_AUC - weak_AUC) with `np.trapz` over points sorted by share).
    Points are sorted by share, points at the same share averaged, and the anchors (0, q_weak)
    and (1, q_strong) added only where the curve has no measured point, so a measured
    endpoint is never blended with an assumed one. 0.5 is the random router, 1.0 a router
    that recovers the whole gap at no strong calls. NaN when q_strong <= q_weak (no gap).
    """
    if not q_strong > q_weak:
        return float("nan")
    xs, pgr = _share_curve(strong_share, quality, q_weak, q_strong)
    return float(np.sum(np.diff(xs) * (pgr[1:] + pgr[:-1]) / 2.0))


def _first_crossing(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """Smallest x where the piecewise-linear curve through (xs, ys) reaches `target`, or NaN."""
    reached = np.flatnonzero(ys >= target)
    if reached.size == 0:
        return float("nan")
    j = int(reached[0])
    if j == 0:
        return float(xs[0])
    x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))


def cpt(
    strong_share: np.ndarray | Sequence[float],
    quality: np.ndarray | Sequence[float],
    q_weak: float,
    q_strong: float,
    target_pgr: float,
) -> float:
    """Call-performance threshold: the least strong-call share that reaches `target_pgr`.

    RouteLLM (arXiv 2406.18665) reports CPT(50%) and CPT(80%); its reference code interpolates
    with `np.interp`, which silently assumes quality rises with share. Here the curve is the
    one `apgr` integrates and the answer is its first linear crossing of the target, which is
    the same as interpolating on its running-maximum (upper) envelope, so a dip does not
    matter. Returns 1.0 if never reached (all-strong recovers the gap by definition) and NaN
    when q_strong <= q_weak (no gap).
    """
    if not 0.0 <= target_pgr <= 1.0:
        raise _param_error("target_pgr", "a float in [0, 1]", target_pgr)
    if not q_strong > q_weak:
        return float("nan")
    xs, pgr = _share_curve(strong_share, quality, q_weak, q_strong)
    share = _first_crossing(xs, pgr, target_pgr)
    return 1.0 if np.isnan(share) else share


def _frontier(costs: np.ndarray, qualities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper convex hull of (cost, quality) from the cheapest point to the best one.

    A random mixture of two operating points is itself achievable, so this rising, concave
    chain is the best quality reachable at each cost.
    """
    keep = ~(np.isnan(costs) | np.isnan(qualities))
    if not keep.any():
        raise _param_error("qualities", "an array with at least one non-NaN point", qualities)
    order = np.lexsort((-qualities[keep], costs[keep]))
    pts = np.column_stack([costs[keep][order], qualities[keep][order]])
    hull: list[np.ndarray] = []
    for p in pts:
        if hull and p[0] == hull[-1][0]:
            continue  # same cost, lower or equal quality: dominated
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0) >= 0:
                hull.pop()  # hull[-1] lies on or below the chord hull[-2] -> p
            else:
                break
        hull.append(p)
    chain = np.array(hull)
    best = int(np.argmax(chain[:, 1]))
    return chain[: best + 1, 0], chain[: best + 1, 1]


def cost_at_quality(
    costs: np.ndarray | Sequence[float],
    qualities: np.ndarray | Sequence[float],
    target_quality: float,
) -> float:
    """Smallest mean cost at which the curve, mixtures of its points allowed, reaches the target.

    NaN if no point or mixture reaches `target_quality`.
    """
    costs, qualities = _as_1d("costs", costs), _as_1d("qualities", qualities)
    _check_same_length(costs=costs, qualities=qualities)
    hull_c, hull_q = _frontier(costs, qualities)
    return _first_crossing(hull_c, hull_q, target_quality)


def savings_at_quality_fraction(
    curve_costs: np.ndarray | Sequence[float],
    curve_qualities: np.ndarray | Sequence[float],
    strong_cost: float,
    strong_quality: float,
    fraction: float = 0.95,
) -> float:
    """Share of the always-strongest bill saved while keeping `fraction` of its quality.

    The headline "same quality for less" number: 1 - cost_at_quality / strong_cost, NaN if the
    curve never reaches fraction * strong_quality (the strong point is not added for you).
    """
    if not 0.0 < fraction <= 1.0:
        raise _param_error("fraction", "a float in (0, 1]", fraction)
    if not strong_cost > 0:
        raise _param_error("strong_cost", "a positive float", strong_cost)
    cost = cost_at_quality(curve_costs, curve_qualities, fraction * strong_quality)
    return float(1.0 - cost / strong_cost)


def random_mixture_curve(
    q_tiers: np.ndarray | Sequence[float],
    c_tiers: np.ndarray | Sequence[float],
    n_points: int = 21,
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline of sending each prompt to a tier at random: the convex frontier of the tiers.

    Returns (costs, qualities) sampled at `n_points` evenly spaced costs from the cheapest
    tier to the best one; a learned router is only worth its keep above this line.
    """
    if not isinstance(n_points, int | np.integer) or n_points < 2:
        raise _param_error("n_points", "an int >= 2", n_points)
    q_tiers, c_tiers = _as_1d("q_tiers", q_tiers), _as_1d("c_tiers", c_tiers)
    _check_same_length(q_tiers=q_tiers, c_tiers=c_tiers)
    hull_c, hull_q = _frontier(c_tiers, q_tiers)
    costs = np.linspace(hull_c[0], hull_c[-1], n_points)
    return costs, np.interp(costs, hull_c, hull_q)


def oracle_choice(quality: np.ndarray, cost: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Per prompt, the cheapest tier with quality >= threshold: the ceiling for any router.

    If no tier reaches the threshold, the tier with the highest observed quality, ties to the
    cheapest. "Cheapest" uses that prompt's cost (ties to the lower index); NaN quality never
    counts as reaching anything. Raises ValueError if a prompt has no observed tier at all.
    """
    quality, cost = _as_2d("quality", quality), _as_2d("cost", cost)
    if quality.shape != cost.shape:
        raise _param_error("cost", f"an array of shape {quality.shape}", cost.shape)
    unobserved = np.isnan(quality).all(axis=1)
    if unobserved.any():
        raise ValueError(
            f"The 'quality' parameter must have an observed tier on every prompt. "
            f"Got {int(unobserved.sum())} prompts with none instead."
        )
    price = np.where(np.isnan(cost), np.inf, cost)
    filled = np.where(np.isnan(quality), -np.inf, quality)
    good = filled >= threshold
    best = filled >= filled.max(axis=1, keepdims=True)
    eligible = np.where(good.any(axis=1, keepdims=True), good, best)
    # Cheapest eligible tier; np.argmin breaks cost ties by the lower (cheaper-listed) index.
    return np.argmin(np.where(eligible, price, np.inf), axis=1)


def reliability_table(
    prob: np.ndarray | Sequence[float],
    outcome: np.ndarray | Sequence[float],
    n_bins: int = 10,
) -> ReliabilityTable:
    """Mean predicted probability against mean realised outcome in equal-width bins.

    `outcome` may be fractional in [0, 1]; rows where either value is NaN are ignored.
    """
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise _param_error("n_bins", "an int >= 1", n_bins)
    p_all, y_all = _as_1d("prob", prob), _as_1d("outcome", outcome)
    _check_same_length(prob=p_all, outcome=y_all)
    keep = ~(np.isnan(p_all) | np.isnan(y_all))
    p, y = p_all[keep], y_all[keep]
    if p.size and (p.min() < 0 or p.max() > 1):
        raise _param_error("prob", "an array of probabilities in [0, 1]", p)
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(idx, weights=p, minlength=n_bins) / counts
        mean_real = np.bincount(idx, weights=y, minlength=n_bins) / counts
    centers = (np.arange(n_bins) + 0.5) / n_bins
    return ReliabilityTable(centers, mean_pred, mean_real, counts)


def expected_calibration_error(
    prob: np.ndarray | Sequence[float],
    outcome: np.ndarray | Sequence[float],
    n_bins: int = 10,
) -> float:
    """Count-weighted mean |mean predicted - mean realised| over equal-width bins.

    The policy compares scores with a quality target, so scores must mean what they say;
    0 is perfect. NaN if no row is usable.
    """
    table = reliability_table(prob, outcome, n_bins)
    total = table.counts.sum()
    if total == 0:
        return float("nan")
    filled = table.counts > 0
    gap = np.abs(table.mean_predicted[filled] - table.mean_realised[filled])
    return float(np.sum(table.counts[filled] * gap) / total)


def bootstrap_ci(
    stat_fn: Callable[..., float],
    arrays: Mapping[str, np.ndarray],
    *,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat_fn(**arrays)` over resampled prompts.

    Every array is indexed by the same resampled prompt indices (first axis), so rows stay
    aligned across quality, cost, choice. Deterministic for a given seed. Resamples whose
    statistic is not finite (e.g. APGR with no gap) are dropped; (NaN, NaN) if none is.
    """
    if not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise _param_error("n_boot", "an int >= 1", n_boot)
    if not 0.0 < alpha < 1.0:
        raise _param_error("alpha", "a float in (0, 1)", alpha)
    if not arrays:
        raise _param_error("arrays", "a non-empty mapping of name -> array", arrays)
    data = {name: np.asarray(a) for name, a in arrays.items()}
    _check_same_length(**data)
    n = len(next(iter(data.values())))
    if n == 0:
        raise _param_error("arrays", "arrays with at least one row", n)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        stats[b] = stat_fn(**{name: a[idx] for name, a in data.items()})
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)
