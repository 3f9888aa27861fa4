"""The learned map as an operator reads it: one row per live category, what it has learned
per tier, the tier it chooses at the configured target and why, and what that saves.

Pure: `map_rows` reads a frozen `LearnedMap`, the pins, each tier's cost of a nominal call
and the calls counted per category (router/traces/evidence.py `call_counts`), and returns
plain dicts the API's schema (router/schemas/learned.py) validates.

**Why a tier.** ``pin``: a pin (or task rule) covering the category fixes or floors it;
``evidence``: the category, or the coarser one a call of it is decided by (``decided_by``),
has ``min_outcomes`` labelled outcomes, and the tier is the cheapest whose lower bound of its
quality relative to the strongest tier's reaches the target (the call's own score shifts that
bound per call; the row shows the category's mean); ``prior``: no such category, and the
model's scores decide (``prior_confidence`` set; the row shows the category's mean scores);
``cold``: no such category, so the strongest tier (or ``cold_tier``).

**Saving** is one minus the chosen tier's cost of a nominal call over the strongest tier's:
what following the map saves on a call of this category, before exploration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.decision.categories import ROOT, SHARED, Signals, parent_of, signal_path
from router.decision.choice import TierTable
from router.decision.learned_map import CategoryKey, Entry, LearnedMap, category_name

NOMINAL_TOKENS_IN = 1000  # the nominal call a saving is priced on (its output: the config's
NOMINAL_TOKENS_OUT = 400  # expected_output_tokens when the caller passes it)
CallCounts = Mapping[CategoryKey, Sequence[tuple[int, int]]]  # per tier (calls, explored)


@dataclass(frozen=True)
class MapFilter:
    """Which rows a page shows: each set field must equal the row's."""

    key: str | None = None
    role: str | None = None
    task: str | None = None
    tier: str | None = None  # the chosen tier


def parse_path(path: str) -> dict[str, str | None]:
    """A category path's parts: role, task, step, cluster (None where absent)."""
    parts: dict[str, str | None] = {"role": None, "task": None, "step": None, "cluster": None}
    for segment in path.split("/") if path != ROOT else ():
        field, _, value = segment.partition(":")
        if field in parts:
            parts[field] = value
    return parts


def roll_up(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], tiers: Sequence[str]
            ) -> dict[CategoryKey, list[tuple[int, int]]]:
    """Per (namespace, signal category) and tier, (calls, explored), from decision counts
    grouped by (api_key, role, task, step, tier): each group counts in its signal path and
    its key's root. Cluster categories are not counted (a call's cluster is not stored)."""
    index = {t: i for i, t in enumerate(tiers)}
    out: dict[CategoryKey, list[tuple[int, int]]] = {}
    for row in rows:
        t = index.get(row["tier"])
        if t is None:
            continue
        signals = Signals(row.get("api_key"), row.get("role"), row.get("task"), row.get("step"))
        namespace = row.get("api_key") or ""
        for path in [ROOT, *signal_path(signals, fields)]:
            counts = out.setdefault((namespace, path), [(0, 0)] * len(index))
            calls, explored = counts[t]
            counts[t] = (calls + int(row["calls"]), explored + int(row["explored"] or 0))
    return out


def map_rows(learned: LearnedMap, target: float, table: TierTable, calls: CallCounts,
             where: MapFilter = MapFilter(), offset: int = 0, limit: int | None = None,
             tokens_in: int = NOMINAL_TOKENS_IN, tokens_out: int = NOMINAL_TOKENS_OUT
             ) -> tuple[int, list[dict[str, Any]]]:
    """(how many live categories match `where`, the `limit` of them after `offset`) in a
    stable order (key, then path); `table` gives the pins and each tier's cost of a nominal
    call (`tokens_in`, `tokens_out`). Rows are built only for the page unless the filter is
    on the chosen tier."""
    costs = [t.estimate_cost(tokens_in, tokens_out) for t in table.tiers]
    matching = []
    for key in sorted(learned.entries):
        parts = parse_path(key[1])
        if not any(want is not None and want != have for want, have in (
                (where.key, key[0]), (where.role, parts["role"]),
                (where.task, parts["task"]))):
            matching.append((key, parts))

    def row(item: tuple[CategoryKey, dict[str, str | None]]) -> dict[str, Any]:
        key, parts = item
        return _row(learned, key, learned.entries[key], parts, target, costs, table,
                    calls.get(key))

    end = None if limit is None else offset + limit
    if where.tier is None:
        return len(matching), [row(item) for item in matching[offset:end]]
    rows = [r for r in map(row, matching) if r["chosen"] == where.tier]
    return len(rows), rows[offset:end]


WHYS = ("evidence", "prior", "pin", "cold")


@dataclass(frozen=True)
class MapSummary:
    """What the dashboard plots of a map: bounded by tiers x reasons, whatever the number of
    categories (never one label per task string)."""

    categories: Mapping[tuple[str, str], int]  # (chosen tier, why) -> live categories
    saving: float  # the finest categories' savings, weighted by their labelled outcomes
    evidence: float  # the share of those outcomes in categories decided by evidence


def summarise(learned: LearnedMap, target: float, table: TierTable) -> MapSummary:
    """Counts per (tier, why) over every live category; saving and evidence over the finest
    ones (no live child; clusters only where a key has no signal category)."""
    _, rows = map_rows(learned, target, table, {})
    counts = {(t, w): 0 for t in learned.tiers for w in WHYS}
    parents = {(ns, parent_of(path)) for ns, path in learned.entries}
    leaves: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    for (ns, path), row in zip(sorted(learned.entries), rows, strict=True):
        counts[(row["chosen"], row["why"])] += 1
        if (ns, path) in parents or path == ROOT:
            continue
        (clusters if row["cluster"] else leaves).append(row)
    finest = leaves or clusters or rows
    weight = sum(r["outcomes"] for r in finest)
    if weight <= 0:
        return MapSummary(counts, 0.0, 0.0)
    return MapSummary(counts, sum(r["saving"] * r["outcomes"] for r in finest) / weight,
                      sum(r["outcomes"] for r in finest if r["why"] == "evidence") / weight)


def _row(learned: LearnedMap, key: CategoryKey, entry: Entry, parts: Mapping[str, str | None],
         target: float, costs: Sequence[float], table: TierTable,
         counts: Sequence[tuple[int, int]] | None) -> dict[str, Any]:
    namespace, path = key
    tiers, top = learned.tiers, len(learned.tiers) - 1
    chosen, why, decided_by = _choice(learned, namespace, parts, target)
    pin = table.rule(parts["task"], parts["role"], None if namespace == SHARED else namespace)
    if pin is not None:
        floor = tiers.index(pin.min_tier or tiers[0])
        index = tiers.index(pin.tier) if pin.tier else max(chosen, floor)
        if index != chosen or pin.tier:
            chosen, why = index, "pin"
    calls = sum(c for c, _ in counts) if counts else None
    explored = sum(e for _, e in counts) if counts else None
    upper = entry.upper or entry.ratio
    return {
        "category": category_name(namespace, path), "key": namespace, **parts,
        "outcomes": round(entry.outcomes, 2),
        "tiers": [{"tier": name,
                   "calls": counts[t][0] if counts else None,
                   "explored": counts[t][1] if counts else None,
                   "outcomes": int(round(entry.labelled[t])) if entry.labelled else None,
                   "effective_outcomes": round(entry.evidence[t], 2),
                   "quality": round(entry.quality[t], 4),
                   "ratio": round(entry.ratio[t], 4),
                   "ratio_low": round(entry.bound[t], 4),
                   "ratio_high": round(min(upper[t], 2.0), 4)}
                  for t, name in enumerate(tiers)],
        "chosen": tiers[chosen], "why": why, "decided_by": decided_by,
        "pin": pin.describe() if pin is not None else None,
        "explored_share": round(explored / calls, 4) if calls and explored is not None else None,
        "saving": round(1.0 - costs[chosen] / costs[top], 4) if costs[top] > 0 else 0.0,
    }


def _choice(learned: LearnedMap, namespace: str, parts: Mapping[str, str | None],
            target: float) -> tuple[int, str, str | None]:
    """(the tier a mean call of the category gets, why, the category that decides it)."""
    key = None if namespace in ("", SHARED) else namespace
    signals = Signals(key, parts["role"], parts["task"], parts["step"])
    cluster = f"cluster:{parts['cluster']}" if parts["cluster"] else None
    deciding, name, _ = learned.find(signals, cluster)
    top = len(learned.tiers) - 1
    if deciding is not None:
        chosen = next(i for i, b in enumerate(deciding.bound) if b >= target - 1e-9 or i == top)
        return chosen, "evidence", name
    config = learned.config
    own = learned.entries.get((namespace, _path(parts)))
    if config.prior_confidence is not None and own is not None:
        return next(i for i, r in enumerate(own.score_ratio)
                    if r >= target - 1e-9 or i == top), "prior", None
    cold = config.cold_tier or learned.tiers[-1]
    return learned.tiers.index(cold), "cold", None


def _path(parts: Mapping[str, str | None]) -> str:
    if parts["cluster"]:
        return f"cluster:{parts['cluster']}"
    return "/".join(f"{f}:{parts[f]}" for f in ("role", "task", "step") if parts[f])
