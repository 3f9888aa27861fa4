"""Off-policy value of a routing policy from logged traffic (one tier observed per call).

Logged data answers "how did the tier we chose do", never "how would another tier have done".
A new policy's value on it is estimated by reweighting:

* **IPS**: mean of 1[target == logged] * reward / propensity. Unbiased when every tier the
  target policy picks had a positive logging propensity (exploration), high variance.
* **SNIPS**: the self-normalised version (divides by the sum of the weights): a little biased,
  far less variance.
* **DR** (doubly robust): a reward model's prediction for the target's tier, corrected by the
  IPS-weighted residual where the target agrees with the log. Unbiased if either the
  propensities or the reward model are right. The reward model here is deliberately simple and
  neutral (the IPS-weighted mean reward of each tier on the *training* part of the log), so it
  favours neither the serving model nor the candidate.

Without exploration (every propensity 1) all three only see the calls where the target agrees
with the log; `support` reports that share so nobody mistakes it for a full evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PolicyValue:
    n: int
    ips: float
    snips: float
    dr: float
    support: float  # share of calls where the target policy picked the logged tier
    cost_usd: float  # mean estimated cost per call of the target's tiers, at config prices
    tier_share: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def tier_means(reward: np.ndarray, logged: np.ndarray, propensity: np.ndarray,
               n_tiers: int) -> np.ndarray:
    """(T,) IPS-weighted mean reward per tier; the overall mean where a tier was never logged."""
    weights = 1.0 / propensity
    overall = float(np.average(reward, weights=weights)) if len(reward) else 0.5
    out = np.full(n_tiers, overall)
    for t in range(n_tiers):
        seen = logged == t
        if seen.any():
            out[t] = float(np.average(reward[seen], weights=weights[seen]))
    return out


def dr_terms(reward: np.ndarray, logged: np.ndarray, target: np.ndarray,
             propensity: np.ndarray, q_hat: np.ndarray) -> np.ndarray:
    """Per-call doubly robust terms; their mean is the DR estimate (and bootstraps per call)."""
    rows = np.arange(len(reward))
    match = (target == logged).astype(float)
    return q_hat[rows, target] + match / propensity * (reward - q_hat[rows, logged])


def policy_value(
    reward: np.ndarray, logged: np.ndarray, target: np.ndarray, propensity: np.ndarray,
    q_hat: np.ndarray, cost: np.ndarray, tiers: list[str],
) -> PolicyValue:
    """IPS, SNIPS and DR value of the `target` tier choices (indices) on logged calls.

    `cost` is (n, T): each call's estimated cost on each tier.
    """
    n = len(reward)
    if n == 0:
        nan = float("nan")
        return PolicyValue(0, nan, nan, nan, nan, nan, {})
    match = (target == logged).astype(float)
    w = match / propensity
    rows = np.arange(n)
    return PolicyValue(
        n=n,
        ips=float(np.mean(w * reward)),
        snips=float(np.sum(w * reward) / np.sum(w)) if w.sum() > 0 else float("nan"),
        dr=float(np.mean(dr_terms(reward, logged, target, propensity, q_hat))),
        support=float(match.mean()),
        cost_usd=float(np.mean(cost[rows, target])),
        tier_share={t: float(np.mean(target == i)) for i, t in enumerate(tiers)},
    )


def paired_dr_ci(
    reward: np.ndarray, logged: np.ndarray, a: np.ndarray, b: np.ndarray,
    propensity: np.ndarray, q_hat: np.ndarray, resamples: int = 500, seed: int = 0,
) -> tuple[float, float, float]:
    """DR(b) - DR(a) and its 95% bootstrap interval, resampling calls (paired)."""
    diff = (dr_terms(reward, logged, b, propensity, q_hat)
            - dr_terms(reward, logged, a, propensity, q_hat))
    if len(diff) == 0:
        nan = float("nan")
        return nan, nan, nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)
