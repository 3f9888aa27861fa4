"""One routing decision, end to end: check limits, view, embed, score, decide, describe.

This is what the HTTP handlers and the batch path call. A `RouterService` is immutable once
built; a reload builds a new one and swaps it in, so a request always sees one config and one
model together.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from router.config import Settings
from router.decision.artifact import RouterModel
from router.decision.encoders.base import Embedder
from router.decision.exploration import Explorer
from router.decision.features import CallView, view_of
from router.decision.policy import CallFacts, Choice, decide
from router.errors import RequestLimitError, ServiceUnavailable
from router.guards.budgets import BudgetTracker, budget_choice
from router.schemas import RouteDecision, RouteRequest

log = logging.getLogger(__name__)

DecisionHook = Callable[[RouteRequest, CallView, RouteDecision], None]


@dataclass
class RouterService:
    """The settings, the model and the embedder that serve together."""

    settings: Settings
    model: RouterModel | None
    embedder: Embedder | None
    load_error: str | None = None
    on_decision: list[DecisionHook] = field(default_factory=list)
    budgets: BudgetTracker | None = None
    explorer: Explorer | None = None

    @property
    def ready(self) -> bool:
        return self.model is not None and self.embedder is not None

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else "unloaded"

    def route(self, requests: Sequence[RouteRequest]) -> list[RouteDecision]:
        """Decisions for a batch of requests, in order; one encoder call for all of them."""
        for index, request in enumerate(requests):
            self.admit(request, prefix=f"requests.{index}." if len(requests) > 1 else "")
        return self.route_admitted(requests)

    def admit(self, request: RouteRequest, prefix: str = "") -> None:
        """Raise the request's own error: a configured limit it breaks, or a spent budget."""
        self.check_limits(request, prefix)
        if self.budgets is not None:
            self.budgets.check(request.role, request.api_key)

    def route_admitted(self, requests: Sequence[RouteRequest]) -> list[RouteDecision]:
        """`route` for requests that already passed `admit` (the micro-batcher checks each)."""
        views = [view_of(r.chat(), r.tools) for r in requests]
        scores, failure = self._scores(views)
        decisions = [
            self._describe(request, view, row, failure)
            for request, view, row in zip(requests, views, scores, strict=True)
        ]
        for request, view, decision in zip(requests, views, decisions, strict=True):
            for hook in self.on_decision:
                hook(request, view, decision)
        return decisions

    def check_limits(self, request: RouteRequest, prefix: str = "") -> None:
        """Limits that depend on config (the schema checks the rest)."""
        limits = self.settings.limits
        messages = request.chat()
        if len(messages) > limits.max_messages:
            raise RequestLimitError(
                f"{prefix}messages",
                f"{len(messages)} messages exceed the limit of {limits.max_messages}",
                limits.max_messages,
            )
        for i, message in enumerate(messages):
            if len(message.text()) > limits.max_content_chars:
                raise RequestLimitError(
                    f"{prefix}messages.{i}.content" if request.messages else f"{prefix}prompt",
                    f"{len(message.text())} characters exceed the limit of "
                    f"{limits.max_content_chars}",
                    limits.max_content_chars,
                )
        if request.tools and len(request.tools) > limits.max_tools:
            raise RequestLimitError(
                f"{prefix}tools",
                f"{len(request.tools)} tools exceed the limit of {limits.max_tools}",
                limits.max_tools,
            )
        if request.tier is not None and request.tier not in self.settings.tier_names:
            raise RequestLimitError(
                f"{prefix}tier",
                f"unknown tier {request.tier!r}; known tiers: {self.settings.tier_names}",
                self.settings.tier_names,
            )

    def _scores(self, views: list[CallView]) -> tuple[np.ndarray, str | None]:
        """(n, T) scores in config tier order, or NaNs and the reason the model failed."""
        names = self.settings.tier_names
        if not self.ready:
            return self._fail(len(views), self.load_error or "model not loaded")
        assert self.model is not None and self.embedder is not None
        try:
            embeddings = self.embedder.encode([v.text for v in views])
            raw = self.model.scores(embeddings, views)
            columns = [self.model.tiers.index(n) for n in names]
            scores = raw[:, columns]
            if not np.all(np.isfinite(scores)):
                raise ValueError("the classifier returned non-finite scores")
        except Exception as exc:  # noqa: BLE001 - any model fault degrades, never a 500
            log.exception("prediction failed")
            return self._fail(len(views), f"prediction failed: {type(exc).__name__}: {exc}")
        return scores, None

    def _fail(self, n: int, why: str) -> tuple[np.ndarray, str]:
        if not self.settings.fail_open:
            raise ServiceUnavailable(why)
        return np.full((n, len(self.settings.tiers)), np.nan), why

    def _describe(
        self, request: RouteRequest, view: CallView, row: np.ndarray, failure: str | None
    ) -> RouteDecision:
        settings = self.settings
        facts = CallFacts(
            tokens_in=view.tokens_in,
            expected_tokens_out=settings.expected_output_tokens,
            has_tools=bool(request.tools),
            task=request.task,
            forced_tier=request.tier,
            max_cost_usd=request.max_cost_usd,
        )
        target = request.quality_target
        if target is None:
            target = settings.quality_target
        if failure is None or request.tier is not None:
            scores = dict(zip(settings.tier_names, row.tolist(), strict=True))
            known = {k: (0.0 if math.isnan(v) else v) for k, v in scores.items()}
            choice = decide(known, settings.tiers, target, facts, settings.task_rules)
            low = (self.budgets.low(request.role, request.api_key)
                   if self.budgets is not None else None)
            if low is not None and request.tier is None:
                choice = budget_choice(choice, low, known, settings, target, facts)
        else:
            choice = self._degraded(facts, failure)
        propensity = None
        if self.explorer is not None:
            choice, propensity = self.explorer.explore(choice, facts, settings)
        return RouteDecision(
            decision_id=uuid.uuid4().hex,
            tier=choice.tier,
            model=choice.model,
            fallbacks=choice.fallbacks,
            scores={
                n: (None if math.isnan(v) else round(v, 6))
                for n, v in zip(settings.tier_names, row.tolist(), strict=True)
            },
            reason=choice.reason,  # type: ignore[arg-type]
            estimated_tokens_in=view.tokens_in,
            estimated_cost_usd=round(choice.estimated_cost_usd, 8),
            router_version=self.version,
            detail=choice.detail,
            propensity=propensity,
        )

    def _degraded(self, facts: CallFacts, failure: str) -> Choice:
        """The configured safe tier, saying why (fail_open)."""
        settings = self.settings
        forced = CallFacts(**{**facts.__dict__, "forced_tier": settings.safe_tier})
        choice = decide({}, settings.tiers, 1.0, forced)
        return Choice(
            tier=choice.tier, reason="degraded", model=choice.model, fallbacks=choice.fallbacks,
            estimated_cost_usd=choice.estimated_cost_usd, detail=failure,
        )
