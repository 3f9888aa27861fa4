"""Which tier an escalation goes to: the next stronger one the call allows, or the strongest.

An escalation follows a decision whose answer failed the caller's check. It goes to a tier
stronger than the failed one (so a call climbs at most once per tier: no loop can run), within
everything the first decision was held to: the tiers that can serve the call (context,
capabilities), its ceiling (the caller's own model's tier) and its ``max_cost_usd``. Which
stronger tier: the next one, or the strongest allowed one when the evidence says the next one
fails this kind of call too (`middle_fails_too`, read from the learned map: the call's category's
lower bound for that tier is below the quality target). Pure: no store, no serving state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from router.decision.categories import Signals
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


def cheap_first(choice: Choice, table: TierTable, facts: CallFacts,
                quality: Sequence[float]) -> Choice | None:
    """For a verifiable call (the caller checks the answer and escalates on a failure): the
    cheaper tier to try first when its expected cost, the wasted call included, is below the
    decided tier's: cost(c) + (1 - quality[c]) x cost(decided) < cost(decided), with
    `quality[c]` the map's predicted quality of tier c for the call (its check pass rate, where
    check results taught it). With an exact check the plan is at least as good as the decided
    tier on every call (a passing answer is kept, a failing one escalates to it), so the
    safety rule that chose the decided tier holds; None: go direct."""
    if choice.reason not in PLANNED or table.fixed(facts.task) is not None:
        return None
    decided = table.index(choice.tier)
    direct = choice.estimated_cost_usd
    floor = table.floor(facts.task)
    top = table.index(facts.ceiling_tier) if facts.ceiling_tier else len(table.tiers) - 1
    best: tuple[float, int] | None = None
    for c in table.serving(facts, within_cap=True):
        if floor <= c < decided and c <= top:
            expected = cost(table.tiers[c], facts) + (1.0 - quality[c]) * direct
            if expected < direct and (best is None or expected < best[0]):
                best = (expected, c)
    if best is None:
        return None
    expected, c = best
    chosen = at_tier(table, c, choice.reason, facts, None, table.serving(facts))
    return replace(chosen, propensity=choice.propensity).say(
        f"verifiable: try '{table.names[c]}' first (predicted quality {quality[c]:.2f}), "
        f"escalate on a failed check (up to '{choice.tier}'): expected {expected:.6f} USD with the "
        f"wasted call, against {direct:.6f} direct")
