"""The service's learned map and its verifiable-call plans, fitted offline from replayed outcomes.

`replayed_map` turns a labelled set with every tier's outcome per prompt (e.g. RouterBench MBPP,
whose label is the test result: an exact check) into the evidence the service would have
stored had each prompt been one call of key ``bench`` and one task (``task``) on every tier
(propensity 1), its label the quality and the check's result (`traces.evidence.increments`,
`traces.checks.check_increments`), and fits it with the service's code (`fit_map`,
`fit_checks`). `map_chain` and `check_aware_chain` then read that map as /route does: the map's
decision (`pipeline.choose`), and for a verifiable call the plan (`escalation.cheap_first`)
and each escalation's tier (`escalation.escalation_tier`). The tier table's prices are set so
each tier's estimated cost of the nominal call is its mean cost on the replayed split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from router.config import LearningConfig, TierConfig, load_settings
from router.decision.categories import Signals
from router.decision.checks import CHECK_MARK, fit_checks
from router.decision.choice import CallFacts, Choice, TierTable
from router.decision.escalation import cheap_first, escalation_tier
from router.decision.learned_map import COLUMNS, CategoryKey, LearnedMap
from router.decision.map_fit import fit_map
from router.decision.pipeline import choose
from router.traces.checks import check_increments
from router.traces.evidence import increments

KEY, TASK = "bench", "mbpp"
TIERS = ("small", "medium", "large")
NOMINAL_TOKENS = 1000  # the nominal call's input; its price is the tier's mean cost


def replayed_map(quality: np.ndarray, cost: np.ndarray, task: str = TASK,
                 config: LearningConfig | None = None, passes: np.ndarray | None = None
                 ) -> tuple[LearnedMap, TierTable]:
    """The map (with its check evidence) the service learns from these outcomes, and a tier
    table priced at each tier's mean cost per call. `quality` (n, T) labels in [0, 1]; `cost`
    (n, T) USD; `passes` (n, T) each answer's check result (None: an exact check, an answer
    passes when its label is 1)."""
    config = config or LearningConfig(cluster_bits=0)
    evidence: dict[CategoryKey, np.ndarray] = {}
    checks: dict[CategoryKey, np.ndarray] = {}
    for i, labels in enumerate(quality):
        for t, tier in enumerate(TIERS):
            decision = {"decision_id": f"{i}-{tier}", "tier": tier, "api_key": KEY,
                        "task": task, "propensity": 1.0, "reason": "classifier"}
            label = float(labels[t])
            _add(evidence, increments({"tier": tier, "quality": label}, decision, TIERS,
                                      config, None), "")
            passed = label >= 1.0 if passes is None else bool(passes[i, t])
            _add(checks, check_increments(decision, passed, label if passed else None, TIERS,
                                          config, None), CHECK_MARK)
    learned = fit_map(evidence, TIERS, config)
    learned = replace(learned, checks=fit_checks(checks, TIERS, config))
    return learned, priced_table(cost.mean(axis=0))


def priced_table(mean_cost: Sequence[float]) -> TierTable:
    """The shipped config's tiers, priced so the nominal call costs each tier's mean."""
    tiers = load_settings(None).tiers
    priced = [TierConfig(**{**t.model_dump(), "input_price_per_m": float(c) * 1e6 /
                            NOMINAL_TOKENS, "output_price_per_m": 0.0,
                            "cached_input_price_per_m": None})
              for t, c in zip(tiers, mean_cost, strict=True)]
    return TierTable(tuple(priced))


def _add(into: dict[CategoryKey, np.ndarray], rows: Sequence[tuple[str, str, str,
                                                                   tuple[float, ...]]],
         mark: str) -> None:
    for namespace, path, tier, values in rows:
        sums = into.setdefault((namespace, path), np.zeros((len(TIERS), len(COLUMNS))))
        sums[TIERS.index(tier[len(mark):])] += values


def _call(learned: LearnedMap, table: TierTable, target: float, task: str
          ) -> tuple[CallFacts, Signals, Choice]:
    """The nominal call's facts with the map's verdict, its signals, and the map's choice."""
    signals = Signals(KEY, task=task)
    costs = [t.estimate_cost(NOMINAL_TOKENS, 0) for t in table.tiers]
    neutral = [0.5] * len(TIERS)  # the map's entry decides; score_weight 0 ignores the scores
    verdict = learned.assess(signals, None, neutral, math.nan, target, 0.0, costs)
    facts = CallFacts(tokens_in=NOMINAL_TOKENS, expected_tokens_out=0, key=KEY,
                      learned=verdict)
    scores = dict(zip(TIERS, verdict.quality, strict=True))
    return facts, signals, choose(scores, table, target, facts)


def map_plans(learned: LearnedMap, table: TierTable, target: float, task: str = TASK
              ) -> list[tuple[tuple[int, ...], float]]:
    """The map's decision for a call of the task that is not checked, with its probability:
    one tier, or the base tier and the cheaper tier its fractional allowance draws."""
    facts, _, choice = _call(learned, table, target, task)
    split = facts.learned.split if facts.learned is not None else None
    if split is not None and choice.tier == TIERS[split[0]]:
        base, cheap, share = split
        return [((base,), 1.0 - share), ((cheap,), share)]
    return [((table.index(choice.tier),), 1.0)]


def check_aware_plans(learned: LearnedMap, table: TierTable, target: float,
                      task: str = TASK) -> list[tuple[tuple[int, ...], float]]:
    """The tiers a verifiable call of the task tries, in order, when every answer fails its
    check, with their probability: the plan's first tier (else the map's, drawn as for any
    call), then each escalation's (`escalation_tier`), up to the strongest."""
    facts, signals, choice = _call(learned, table, target, task)
    checks = learned.checks.find(signals, None)[0] if learned.checks is not None else None
    planned = cheap_first(choice, table, facts, checks, target)
    firsts = ([(table.index(planned.tier), 1.0)] if planned is not None
              else [(chain[0], w) for chain, w in map_plans(learned, table, target, task)])
    plans = []
    for first, weight in firsts:
        chain = [first]
        while chain[-1] < len(TIERS) - 1:
            chain.append(escalation_tier(table, facts, TIERS[chain[-1]], learned, signals,
                                         target, verifiable=True))
        plans.append((tuple(chain), weight))
    return plans
