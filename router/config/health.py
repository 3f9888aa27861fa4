"""The `health:` section: when a model's circuit opens, how long it cools down, how it is probed.

The state it configures is `router.serving.model_health.ModelHealth`, fed by `/feedback` errors; the
decision reads a snapshot of it (`router.decision.health_view`).
"""

from __future__ import annotations

from pydantic import Field

from router.config.parts import Section


class HealthConfig(Section):
    """Circuit breaking per deployed model, from the outcomes `/feedback` reports.

    A model's circuit opens when, within the last `window_s` seconds, its last `min_calls`
    reported calls all failed, or at least `min_calls` calls were reported and more than
    `max_error_rate` of them failed (a failure is an `error` of `timeout`, `rate_limited` or
    `server_error`), and those failures were reported on at least `min_calls` distinct
    decisions and, with more than one API key configured, on decisions of at least `min_keys`
    keys (a report counts each model once, and names only models of its decision's chain).
    Decisions then skip it; after `cooldown_s` it is tried again on
    `probe_share` of the calls that would have had it (half-open): a successful probe closes the
    circuit, a failed one opens it for another `cooldown_s`.
    """

    enabled: bool = True
    window_s: float = Field(default=60.0, gt=0, le=86_400,
                            description="Seconds of outcomes the error rate and latency cover.")
    min_calls: int = Field(default=5, ge=1, le=10_000,
                           description="Calls in the window before the error rate can open "
                                       "a circuit; also that many failures in a row open it.")
    max_error_rate: float = Field(default=0.5, gt=0, le=1,
                                  description="A circuit opens above this share of failures.")
    cooldown_s: float = Field(default=30.0, gt=0, le=86_400,
                              description="Seconds an open circuit waits before probing.")
    probe_share: float = Field(default=0.1, gt=0, le=1,
                               description="Share of eligible calls that probe a cooled-down "
                                           "model (half-open).")
    min_keys: int = Field(default=2, ge=1, le=1000,
                          description="With more than one API key configured, the failures "
                                      "that open a circuit come from decisions of at least "
                                      "this many keys (one caller cannot take a model down "
                                      "for the others).")
    max_events: int = Field(default=10_000, ge=10, le=1_000_000,
                            description="Outcomes kept per model (bounds memory).")
