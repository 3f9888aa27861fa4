"""The `verify` section: confidence-based acceptance of a cheap answer (POST /verify)."""

from __future__ import annotations

from pydantic import Field

from router.config.parts import Section


class VerifyConfig(Section):
    """POST /verify: accept a cheap answer on its mean token log-probability, or escalate.

    Off by default: no shared data set carries log-probabilities, so the acceptance rule has
    been tested on synthetic data only. Per category (the API key and the call's `task`), the
    threshold is learned from answers whose check result came with their /verify; an answer
    is accepted only when the one-sided lower bound of the accepted answers' pass rate is at
    least the call's quality_target (so with no evidence nothing is accepted on confidence)."""

    enabled: bool = Field(default=False, description="Serve POST /verify (404 when off).")
    confidence: float = Field(default=0.9, ge=0.5, lt=1.0,
                              description="Of the one-sided lower bound of the accepted "
                                          "answers' pass rate.")
    min_outcomes: int = Field(default=30, ge=1, le=100_000,
                              description="Checked answers a category needs before any of its "
                                          "answers is accepted on confidence.")
    max_outcomes: int = Field(default=5000, ge=10, le=1_000_000,
                              description="Newest checked answers kept per category (memory).")
