"""Which stored decisions the off-policy estimate rests on, and how it reads them: the served
tier and its propensity (a shadow call's is the caller's own model, certainly), the cost
(reported, else estimated), what is left out and why; and the sentence that sums it up.
Rows are synthetic (made-up decisions and outcomes in the store's row shape)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.config import load_settings
from router.decision.off_policy import Estimate, Interval
from router.traces.estimate import EstimateLimits, served_calls, summary

SETTINGS = load_settings(None)
SCORES = json.dumps({"small": 0.5, "medium": 0.7, "large": 0.8})


def row(**kw: Any) -> dict[str, Any]:
    """One decision joined to its labelled outcome, as ESTIMATE_SQL returns it."""
    return {"decided_tier": "medium", "propensity": 0.4, "shadow": 0, "api_key": "team",
            "role": "planner", "task": "plan", "step": None, "embedding": None,
            "prior_scores": SCORES, "estimated_tokens_in": 300, "features": '{"n_tools": 1}',
            "requested_model": None, "max_cost_usd": None, "outcome_tier": "medium",
            "quality": 0.8, "cost_usd": 0.002, "tokens_in": None, "tokens_out": None, **kw}


def test_a_followed_decision_is_read_with_its_logged_propensity_and_reported_cost() -> None:
    (served,), skipped = served_calls([row()], SETTINGS, None)
    assert skipped == {}
    assert (served.tier, served.propensity, served.quality, served.cost, served.shadow) == (
        1, 0.4, 0.8, 0.002, False)
    call = served.call
    assert (call.signals.key, call.signals.role, call.signals.task) == ("team", "planner", "plan")
    assert call.scores == (0.5, 0.7, 0.8) and call.has_tools
    assert (call.tokens_in, call.tokens_out) == (300, SETTINGS.expected_output_tokens)


def test_without_a_reported_cost_the_served_tier_is_priced_with_the_reported_tokens() -> None:
    (served,), _ = served_calls([row(cost_usd=None, tokens_in=1000, tokens_out=50)], SETTINGS,
                                None)
    assert served.cost == pytest.approx(SETTINGS.tier("medium").estimate_cost(1000, 50))


def test_a_shadow_decision_is_the_callers_own_model_taken_with_certainty() -> None:
    shadow = row(shadow=1, decided_tier="small", propensity=1.0, outcome_tier="large",
                 requested_model="gpt-4.1")
    (served,), _ = served_calls([shadow], SETTINGS, None)
    assert (served.tier, served.propensity, served.shadow) == (2, 1.0, True)
    assert served.call.ceiling_tier is None  # nobody follows a shadow decision's ceiling
    (followed,), _ = served_calls([row(requested_model="gpt-4.1-mini")], SETTINGS, None)
    assert followed.call.ceiling_tier == "medium"


def test_what_cannot_be_estimated_from_is_left_out_and_counted_by_why() -> None:
    rows = [row(outcome_tier="large"),  # a fallback served it
            row(shadow=1, outcome_tier=None),  # a model no tier serves
            row(prior_scores=None),
            row(prior_scores=json.dumps({"small": 0.5})),
            row()]
    served, skipped = served_calls(rows, SETTINGS, None)
    assert len(served) == 1
    assert skipped == {"another tier than the decided one served it (a fallback)": 1,
                       "the model that served it is in no configured tier": 1,
                       "no model scores stored": 2}


def test_the_summary_quotes_dr_and_in_shadow_mode_the_models_followed() -> None:
    figure = {"ips": Interval(0.9, 0.8, 1.0), "snips": Interval(0.95, 0.9, 1.0),
              "dr": Interval(0.96, 0.94, 0.98)}
    cost = {name: Interval(0.7, 0.65, 0.75) for name in figure}
    enough = Estimate(calls=500, effective_calls=400.0, strongest_effective_calls=300.0,
                      overlap=1.0, unsupported=0.0, enough=True, note=None, quality=figure,
                      cost=cost, quality_vs_served=Interval(0.99, 0.97, 1.0),
                      cost_vs_served=Interval(0.6, 0.55, 0.66))
    said = summary(enough, "shadow", 0.95, 0.95)
    assert said == ("Following the map at quality_target 0.95: 0.96 [0.94, 0.98] of "
                    "always-strongest's quality at 0.70 [0.65, 0.75] of its cost (doubly "
                    "robust, 500 labelled decisions, 95% intervals); against the models "
                    "followed now: 0.99 [0.97, 1.00] of their quality at 0.60 [0.55, 0.66] of "
                    "their cost.")
    assert "models followed" not in summary(enough, "routed", 0.95, 0.95)
    empty = Estimate(calls=0, effective_calls=0.0, strongest_effective_calls=0.0, overlap=0.0,
                     unsupported=0.0, enough=False, note="no labelled decisions")
    assert summary(empty, "none", 0.95, 0.95) == "No estimate yet: no labelled decisions."


def test_more_bootstrap_work_than_its_bound_is_refused_naming_the_resamples() -> None:
    from router.errors import RequestLimitError

    with pytest.raises(RequestLimitError) as exc:
        EstimateLimits(max_rows=100_000, resamples=201)
    assert exc.value.field == "estimate_resamples" and exc.value.limit == 200


def test_a_stored_embedding_falls_in_the_cluster_the_service_would_find() -> None:
    import numpy as np

    from router.decision.categories import Clusters
    from router.traces.rows import encode_embedding

    clusters = Clusters(4, 8)
    vector = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    rows = [row(embedding=encode_embedding(vector)), row(embedding=encode_embedding(vector[:4])),
            row()]
    served, _ = served_calls(rows, SETTINGS, clusters)
    expected = clusters.path(int(clusters.of(vector[None, :].astype(np.float16)
                                             .astype(np.float32))[0]))
    assert expected is not None and expected.startswith("cluster:")
    assert [s.call.cluster for s in served] == [expected, None, None]
    assert [s.call.cluster for s in served_calls(rows, SETTINGS, None)[0]] == [None] * 3
