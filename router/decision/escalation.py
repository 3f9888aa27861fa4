"""Which tier an escalation goes to: the next stronger one the call allows, or the strongest.

An escalation follows a decision whose answer failed the caller's check. It goes to a tier
stronger than the failed one (so a call climbs at most once per tier: no loop can run), within
everything the first decision was held to: the tiers that can serve the call (context,
capabilities), its ceiling (the caller's own model's tier) and its ``max_cost_usd``. Which
stronger tier: the next one, or the strongest allowed one when the evidence says the next one
fails this kind of call too (`middle_fails_too`, read from the learned map: the call's category's
lower bound for that tier is below the quality target). For a verifiable call the map's check
evidence (router/decision/checks.py) may put a cheaper tier first, at the first decision and at
each escalation: `best_plan` weighs the plans by expected cost, wasted calls included, under the
map's safety rule on the plan's expected final quality. Pure: no store, no serving state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations

from router.decision.categories import Signals
from router.decision.checks import CheckEntry
from router.decision.choice import CallFacts, Choice, TierTable, at_tier, cost
from router.decision.learned_map import LearnedMap
from router.errors import EscalationRefused
from router.schemas import Reason


def next_tier(table: TierTable, facts: CallFacts, failed_tier: str,
              straight_to_strongest: bool = False) -> int:
    """The index of the tier an escalation from `failed_tier` goes to; `EscalationRefused`
    (409) naming the limit when there is none."""
    names = table.names
    if failed_tier not in names:
        raise EscalationRefused(
            f"decision's tier {failed_tier!r} is no configured tier (tiers: {list(names)}): "
            "there is no stronger tier to escalate to", limit=list(names))
    start = table.index(failed_tier)
    if start == len(names) - 1:
        raise EscalationRefused(
            f"the decision is on the strongest tier, {failed_tier!r}: there is no stronger "
            "tier to escalate to", limit=failed_tier)
    stronger = list(range(start + 1, len(names)))
    can = [i for i in stronger if i in table.serving(facts)]
    if not can:
        raise EscalationRefused(
            f"no tier stronger than {failed_tier!r} can serve this call (it needs "
            f"{facts.tokens} tokens of context"
            + (f" and {', '.join(sorted(facts.capabilities))}" if facts.capabilities else "")
            + ")", limit="capabilities")
    if facts.ceiling_tier is not None:
        top = table.index(facts.ceiling_tier)
        if not [i for i in can if i <= top]:
            named = facts.ceiling_model or facts.ceiling_tier
            raise EscalationRefused(
                f"the call's ceiling is {named!r} (tier {facts.ceiling_tier!r}), no stronger "
                f"than the failed tier {failed_tier!r}: the router never routes above the "
                "caller's model", limit=facts.ceiling_model or facts.ceiling_tier)
        can = [i for i in can if i <= top]
    if facts.max_cost_usd is not None:
        fits = [i for i in can if cost(table.tiers[i], facts) <= facts.max_cost_usd]
        if not fits:
            cheapest = min(cost(table.tiers[i], facts) for i in can)
            raise EscalationRefused(
                f"no tier stronger than {failed_tier!r} fits max_cost_usd="
                f"{facts.max_cost_usd} (the cheapest is estimated at {cheapest:.6f} USD)",
                limit=facts.max_cost_usd)
        can = fits
    return can[-1] if straight_to_strongest else can[0]


def middle_fails_too(learned: LearnedMap, signals: Signals, next_index: int,
                     quality_target: float) -> bool:
    """Does the learned map say the next stronger tier fails this kind of call too? True when
    the call's finest category with enough evidence puts that tier's lower bound of quality
    relative to the strongest below the target (then the escalation goes straight to the
    strongest allowed tier); False without such a category, or for the strongest tier."""
    if next_index >= len(learned.tiers) - 1:
        return False
    entry, _, _ = learned.find(signals, None)
    return entry is not None and entry.bound[next_index] < quality_target


# The decisions a verifiable call may turn into a cheap-first plan: the scores' (or the map's)
# own pick, or a move up for context or a task floor; never a forced, fixed, explored, sticky,
# budget, health or degraded decision, which say which tier on purpose.
PLANNED: frozenset[Reason] = frozenset({"classifier", "context_upgrade", "task_rule", "ceiling"})
EPS = 1e-4


@dataclass(frozen=True)
class Plan:
    """A verifiable call's plan: the tiers tried in order, each escalated from on a failed
    check, the last one's answer kept."""

    chain: tuple[int, ...]
    cost: float  # expected, the wasted calls included
    bound: float  # lower bound of the expected final quality relative to the strongest tier


def best_plan(cheaper: Sequence[int], direct: int, bound: float, strongest_quality: float,
              checks: CheckEntry, costs: Sequence[float], target: float) -> Plan:
    """Of going to the `direct` tier (the map's pick, whose lower bound relative to the
    strongest tier is `bound`) and trying some `cheaper` tiers first, in order, escalating on
    a failed check, the plan with the least expected cost, the wasted calls included, whose
    expected final quality keeps the map's safety rule (its lower bound >= `target`).

    A call that passes at a cheaper tier c keeps c's answer instead of the direct tier's: the
    plan loses at most (1 - quality of a passed answer) on those calls, so its bound is
    ``bound - sum_c reach_c x pass_c+ x (1 - passed_c-) / strongest_quality`` with pass_c+
    the pass rate's upper bound, passed_c- the lower bound of a passed answer's quality and
    reach_c the expected share of calls that get to c (the pass rates' means, taken as
    independent). With an exact check (a passed answer is right) the loss is nil and the plan
    is as good as the direct tier. Keeping the cheap answer whatever its check says is the
    map's own rule: when a cheaper tier's bound passes, the map picks it and the plan is direct.
    """
    best = Plan((direct,), float(costs[direct]), bound)
    if bound < target - 1e-9:  # the direct tier is an allowance's draw: no room to lose
        return best
    scale = max(strongest_quality, EPS)
    tiers = sorted(set(cheaper))
    for k in range(1, len(tiers) + 1):
        for tried in combinations(tiers, k):
            reach, spend, loss = 1.0, 0.0, 0.0
            for c in tried:
                spend += reach * costs[c]
                loss += reach * checks.pass_upper[c] * (1.0 - checks.passed_lower[c])
                reach *= 1.0 - checks.pass_rate[c]
            spend += reach * costs[direct]
            kept = bound - loss / scale
            if kept >= target - 1e-9 and spend < best.cost:
                best = Plan((*tried, direct), spend, kept)
    return best


def allowed(table: TierTable, facts: CallFacts) -> list[int]:
    """The tiers a call may go to: those that can serve it within its max_cost_usd, under its
    ceiling."""
    top = table.index(facts.ceiling_tier) if facts.ceiling_tier else len(table.tiers) - 1
    return [i for i in table.serving(facts, within_cap=True) if i <= top]


def cheap_first(choice: Choice, table: TierTable, facts: CallFacts,
                checks: CheckEntry | None, target: float) -> Choice | None:
    """For a verifiable call (the caller checks the answer and escalates on a failure): the
    cheaper tier to try first, when `best_plan` over the call's category's check evidence
    finds one; None: go direct (always without check evidence, or without the map's verdict).

    Where the map spends its fractional allowance (`Verdict.split`: a logged share of the
    category's calls drawn to a cheaper tier), the plan weighs itself against that allowance,
    from its base tier with the whole margin, and replaces it for this call when its expected
    cost is lower (whichever tier the draw gave): the margin is spent once, by one of them. The
    plan's tier is then certain given the evidence (propensity 1, exploration aside).
    """
    verdict = facts.learned
    if (choice.reason not in PLANNED or checks is None or verdict is None
            or table.fixed(facts.task, facts.role, facts.key) is not None):
        return None
    decided = table.index(choice.tier)
    costs = [cost(t, facts) for t in table.tiers]
    direct, propensity = choice.estimated_cost_usd, choice.propensity
    split = verdict.split
    if split is not None and decided in split[:2]:
        base, cheap, share = split
        decided, propensity = base, 1.0
        direct = share * costs[cheap] + (1.0 - share) * costs[base]
    floor = table.floor(facts.task, facts.role, facts.key)
    cheaper = [c for c in allowed(table, facts) if floor <= c < decided]
    plan = best_plan(cheaper, decided, verdict.bounds[decided], verdict.quality[-1], checks,
                     costs, target)
    if len(plan.chain) == 1 or plan.cost >= direct:
        return None
    chosen = at_tier(table, plan.chain[0], choice.reason, facts, choice.detail,
                     table.serving(facts))
    return replace(chosen, propensity=propensity).say(describe(table, plan, checks, direct,
                                                               table.names[decided]))


def describe(table: TierTable, plan: Plan, checks: CheckEntry, direct: float, up_to: str
             ) -> str:
    """A plan in words: what each tier tried passes, the expected cost and quality."""
    names = table.names
    tried = ", then ".join(
        f"'{names[c]}' (passes {checks.pass_rate[c]:.2f} of {checks.tier_runs[c]:.0f} checks, "
        f"passed answers' quality >= {checks.passed_lower[c]:.2f})" for c in plan.chain[:-1])
    return (f"verifiable: try {tried}, escalate on a failed check (up to '{up_to}'): "
            f"expected {plan.cost:.6f} USD with the wasted calls, against {direct:.6f} "
            f"without a plan; expected quality >= {plan.bound:.2f} of the strongest tier's")


def escalation_tier(table: TierTable, facts: CallFacts, failed_tier: str, learned: LearnedMap,
                    signals: Signals, target: float, verifiable: bool = False) -> int:
    """The tier an escalation goes to (`escalation_plan`'s)."""
    return escalation_plan(table, facts, failed_tier, learned, signals, target, verifiable)[0]


def escalation_plan(table: TierTable, facts: CallFacts, failed_tier: str, learned: LearnedMap,
                    signals: Signals, target: float, verifiable: bool = False
                    ) -> tuple[int, str | None]:
    """The tier an escalation goes to, and why when a plan put it there: the next stronger
    one, or the strongest allowed when the map says the next fails this kind of call too
    (`middle_fails_too`); for a verifiable call, a tier between the failed one and that one
    first when `best_plan` over the category's check evidence says trying it saves (the
    escalation is itself checked)."""
    nxt = next_tier(table, facts, failed_tier)
    if middle_fails_too(learned, signals, nxt, target):
        nxt = next_tier(table, facts, failed_tier, straight_to_strongest=True)
    if not verifiable or learned.checks is None:
        return nxt, None
    checks, _ = learned.checks.find(signals, None)
    entry, _, _ = learned.find(signals, None)
    if checks is None or entry is None:
        return nxt, None
    failed = table.index(failed_tier)
    top = len(table.tiers) - 1
    bound = 1.0 if nxt == top else entry.bound[nxt]
    cheaper = [c for c in allowed(table, facts) if failed < c < nxt]
    costs = [cost(t, facts) for t in table.tiers]
    plan = best_plan(cheaper, nxt, bound, entry.quality[top], checks, costs, target)
    if len(plan.chain) == 1:
        return nxt, None
    return plan.chain[0], describe(table, plan, checks, costs[nxt], table.names[nxt])
