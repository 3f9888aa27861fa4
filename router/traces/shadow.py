"""What shadow mode would have saved: the router's picks priced against the models followed.

A shadow decision (``shadow: true`` on the request, or the config's default) is recorded but
not followed; its caller posts the outcome of its own model. Over the calls that came back,
the followed cost is the outcome's (reported, else estimated from the followed model's tier and
the reported tokens) and the routed cost is the router's tier priced with the same tokens; the
quality beside it is what the followed models realised and what the router predicted for its
picks, so a team sees the money and the quality it would trade before it follows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from router.config import Settings
from router.schemas import ShadowReport
from router.traces.db import SHADOW_SQL
from router.traces.store import TraceStore


def shadow_report(store: TraceStore, settings: Settings, since: float | None = None
                  ) -> ShadowReport | None:
    """The summary of the shadow decisions since `since`; None when there were none."""
    rows = store.read(SHADOW_SQL, (since if since is not None else 0.0,))
    return summarise(rows, settings) if rows else None


def summarise(rows: Iterable[dict[str, Any]], settings: Settings) -> ShadowReport:
    """Sum the shadow rows (decision joined to its outcome, if any) into a report."""
    calls = returned = agreed = known = 0
    followed_usd = routed_usd = 0.0
    realised: list[float] = []
    predicted: list[float] = []
    for row in rows:
        calls += 1
        if row["feedback_id"] is None:
            continue
        returned += 1
        tokens_in = row["tokens_in"] if row["tokens_in"] is not None else row[
            "estimated_tokens_in"]
        tokens_out = (row["tokens_out"] if row["tokens_out"] is not None
                      else settings.expected_output_tokens)
        followed_usd += float(row["cost_usd"] if row["cost_usd"] is not None
                              else row["estimated_cost_usd"])
        if row["tier"] in settings.tier_names:
            routed_usd += settings.tier(row["tier"]).estimate_cost(int(tokens_in), int(tokens_out))
        if row["followed_tier"] is not None:
            known += 1
            agreed += int(row["followed_tier"] == row["tier"])
        if row["quality"] is not None:
            realised.append(float(row["quality"]))
        score = (json.loads(row["scores"]) if row["scores"] else {}).get(row["tier"])
        if score is not None:
            predicted.append(float(score))
    return ShadowReport(
        calls=calls, with_outcome=returned, followed_usd=round(followed_usd, 8),
        routed_usd=round(routed_usd, 8), saved_usd=round(followed_usd - routed_usd, 8),
        saved_fraction=(1 - routed_usd / followed_usd) if followed_usd > 0 else None,
        same_tier_share=agreed / known if known else None,
        followed_quality=_mean(realised), routed_predicted_quality=_mean(predicted))


def _mean(values: list[float]) -> float | None:
    return round(math.fsum(values) / len(values), 4) if values else None
