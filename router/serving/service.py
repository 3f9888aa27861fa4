"""One routing decision, end to end: check limits, view, embed, score, choose, describe, record.

This is what the HTTP handlers and the micro-batcher call. A `RouterService` is built complete
by `serving.holder` and never changed: a reload builds a new one and swaps it in, so a request
always sees one config and one model together. What does change while it serves (budget spend,
the exploration random numbers, the trace store, the learned map) lives in the state objects
it holds, and the decision itself (`decision.pipeline.choose`) receives snapshots of them. The
learned map (`decision.learned_map`) is read once per batch, a frozen object a rebuild replaces
whole: its verdict on each call (bounds of each tier's relative quality, exploration chances)
is what the pipeline's step 2 and exploration read. Without learning (off, or no store) the
same rule runs on an empty map: every call is cold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from router.config import Settings
from router.decision.artifact import RouterModel
from router.decision.categories import Signals
from router.decision.choice import CallFacts, TierTable, cost
from router.decision.encoders.base import Embedder
from router.decision.escalation import cheap_first
from router.decision.features import CallView, view_of
from router.decision.learned_map import LearnedMap, Verdict
from router.decision.map_fit import empty_map
from router.decision.pipeline import Reads, choose
from router.errors import RequestLimitError, ServiceUnavailable
from router.guards.budgets import BudgetTracker
from router.guards.gate import Admission, Gate
from router.guards.run_spend import RunKey, RunSpend, check_run, run_cap, run_key
from router.schemas import RouteDecision, RouteRequest, misspelt_field
from router.serving.contracts import Explorer, Health, MapSource, Recorder, Scored
from router.traces.rows import Seen

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterService:
    """The settings, the model and the embedder that serve together, and the state they use."""

    settings: Settings
    model: RouterModel | None
    embedder: Embedder | None
    load_error: str | None = None
    recorders: tuple[Recorder, ...] = ()
    budgets: BudgetTracker | None = None  # None when no budget is configured
    explorer: Explorer | None = None  # None without exploration and without learning
    learning: MapSource | None = None  # None when learning is off (or there is no store)
    gate: Gate | None = None  # tokens per minute and budgets; None when neither is configured
    runs: RunSpend | None = None  # each live run's spend and model (router/guards/run_spend.py)
    health: Health | None = None  # None when health is off
    tier_names: tuple[str, ...] = field(init=False)
    table: TierTable = field(init=False, repr=False)  # what the decision reads of the config
    cold_map: LearnedMap = field(init=False, repr=False)  # the map without learning

    def __post_init__(self) -> None:
        object.__setattr__(self, "tier_names", tuple(self.settings.tier_names))
        object.__setattr__(self, "table", TierTable.of(self.settings))
        object.__setattr__(self, "cold_map", empty_map(self.tier_names, self.settings.learning))

    def learned_map(self) -> LearnedMap:
        """The map this batch decides with: one read of a reference a rebuild replaces whole."""
        return self.learning.map if self.learning is not None else self.cold_map

    @property
    def ready(self) -> bool:
        return self.model is not None and self.embedder is not None

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else "unloaded"

    def route(self, requests: Sequence[RouteRequest]) -> list[RouteDecision]:
        """Decisions for a batch of requests, in order; one encoder call for all of them. All or
        nothing: the first request refused (or a failed decision) fails the batch, and every
        charge made for it is given back."""
        admissions: list[Admission] = []
        try:
            for index, request in enumerate(requests):
                admissions.append(self.admit(
                    request, prefix=f"requests.{index}." if len(requests) > 1 else ""))
            return self.route_admitted(requests, admissions)
        except Exception:
            self.release(admissions)
            raise

    def release(self, admissions: Sequence[Admission]) -> None:
        """Give back the token charges of admitted calls that got no decision."""
        if self.gate is not None:
            for admission in admissions:
                self.gate.release(admission)

    def admit(self, request: RouteRequest, prefix: str = "") -> Admission:
        """The call's admission (its decision id, and the token charge made under it), or the
        request's own error: a configured limit it breaks, its key's tokens per minute, or a
        spent budget (neither for a shadow call: its caller follows its own model, a 429 or
        402 would only stop it)."""
        self.check_limits(request, prefix)
        shadow = self.is_shadow(request)
        if self.runs is not None and request.run_id is not None and not shadow:
            check_run(self.runs, request, self.settings.runs)  # before any charge is made
        if self.gate is None:  # built whenever a budget or a per-minute limit is configured
            return Admission.new(request.api_key)
        return self.gate.admit_request(request, self.settings.expected_output_tokens, prefix,
                                       shadow)

    def is_shadow(self, request: RouteRequest) -> bool:
        """A decision the caller will not follow (the request says, else the config)."""
        return self.settings.shadow if request.shadow is None else request.shadow

    def route_admitted(self, requests: Sequence[RouteRequest],
                       admissions: Sequence[Admission]) -> list[RouteDecision]:
        """`route` for requests that already passed `admit` (the micro-batcher checks each):
        each decision carries its admission's id."""
        views = [view_of(r.chat(), r.tools) for r in requests]
        learned = self.learned_map()
        version = self.version
        if learned.revision:  # which map decides
            version = f"{version}+s{learned.revision}"
        scored = self._scores(views)
        clusters = scored.clusters if scored.clusters is not None else np.full(len(views), -1)
        trust = scored.confidence if scored.confidence is not None else np.full(len(views), np.nan)
        # Every decision is made before any is accounted: a call that raises (a forced tier with
        # no healthy model) fails the batch with no run spend counted, so the micro-batcher's
        # one-by-one retry counts each call once, under the admission its token charge was
        # made under. `pins` carries earlier calls' models to later
        # calls of the same sticky run within the batch.
        pins: dict[RunKey, tuple[str | None, str | None]] = {}
        decisions = [
            self._describe(request, view, row, scored.failure, version, learned, int(cluster),
                           float(c), pins)
            for request, view, row, cluster, c in zip(requests, views, scored.scores, clusters,
                                                      trust, strict=True)
        ]
        for request, admission, decision in zip(requests, admissions, decisions, strict=True):
            decision.decision_id = admission.decision_id
            self._run_account(request, decision)
        for i, (request, view, decision) in enumerate(zip(requests, views, decisions, strict=True)):
            seen = None
            if scored.embeddings is not None and scored.failure is None and self.embedder:
                seen = Seen(scored.embeddings[i], self.embedder.name,
                            dict(zip(self.tier_names, scored.scores[i].tolist(), strict=True)),
                            learned.revision if self.learning is not None else None)
            for recorder in self.recorders:
                recorder.record(request, view, decision, seen)
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
        if request.tier is not None and request.tier not in self.tier_names:
            raise RequestLimitError(
                f"{prefix}tier",
                f"unknown tier {request.tier!r}; known tiers: {list(self.tier_names)}",
                list(self.tier_names),
            )
        for name in request.ignored_fields():
            near = misspelt_field(name)
            if near is not None:
                raise RequestLimitError(
                    f"{prefix}{name}", f"unknown field {name!r}: did you mean {near!r}? (a "
                    "misspelt router field is refused, not ignored)", near)
        self._check_capabilities(request, prefix)

    def _check_capabilities(self, request: RouteRequest, prefix: str) -> None:
        """A call that needs a capability no configured tier has is refused, naming it."""
        offered = {c for t in self.settings.tiers for c in t.capabilities}
        for where, kind in request.capability_needs():
            if kind not in offered:
                raise RequestLimitError(
                    f"{prefix}{where}", f"this call needs the {kind!r} capability and no "
                    f"configured tier has it (tiers offer: {sorted(offered)})", kind)

    def _scores(self, views: list[CallView]) -> Scored:
        """(n, T) model scores in config tier order and each call's embedding cluster; NaNs
        and why when the model failed."""
        if self.model is None or self.embedder is None:
            return self._fail(len(views), self.load_error or "model not loaded")
        try:
            embeddings = self.embedder.encode([v.text for v in views])
            scores, confidence = self.model.scores_with_confidence(embeddings, views,
                                                                   self.tier_names)
            if not np.all(np.isfinite(scores)):
                raise ValueError("the classifier returned non-finite scores")
            grouping = self.learning.clusters if self.learning is not None else None
            clusters = grouping.of(embeddings) if grouping is not None else None
        except Exception as exc:  # noqa: BLE001 - any model fault degrades, never a 500
            log.exception("prediction failed")
            return self._fail(len(views), f"prediction failed: {type(exc).__name__}: {exc}")
        return Scored(scores, None, embeddings, clusters, confidence)

    def _fail(self, n: int, why: str) -> Scored:
        if not self.settings.fail_open:
            raise ServiceUnavailable(why)
        return Scored(np.full((n, len(self.tier_names)), np.nan), why)

    def _describe(
        self, request: RouteRequest, view: CallView, row: np.ndarray, failure: str | None,
        version: str, learned: LearnedMap, cluster: int = -1, confidence: float = math.nan,
        pins: dict[RunKey, tuple[str | None, str | None]] | None = None,
    ) -> RouteDecision:
        """The decision for one call, not yet accounted (`route_admitted` does that, and gives
        it its admission's `decision_id`)."""
        facts = self._facts(request, view)
        shadow = self.is_shadow(request)
        scores = dict(zip(self.tier_names, row.tolist(), strict=True))
        target = request.quality_target
        if target is None:
            target = self.settings.quality_target
        budgets = self.budgets
        # never explored: a dry run (nobody runs it), a shadow call (the pipeline: nobody
        # follows the draw)
        explorer = self.explorer if not request.dry_run else None
        category = self._category(request, cluster)  # the map's two look-ups of the call
        if failure is None:
            rate = self.settings.exploration_rate if explorer and not shadow else 0.0
            verdict = self._verdict(category, learned, row, confidence, target, rate, facts)
            scores = dict(zip(self.tier_names, verdict.quality, strict=True))
            facts = replace(facts, learned=verdict)
        reads = Reads(
            low=(lambda: budgets.low(request.role, request.api_key)) if budgets else None,
            draw=explorer.draw if explorer is not None else None,
            health=self.health.decision_view() if self.health is not None else None,
            pin=self._pin(request, pins) if self._sticky(request) else None,
            confidence=confidence, failure=failure, shadow=shadow,
        )
        choice = choose(scores, self.table, target, facts, reads)
        plan: Literal["direct", "try_cheap_first"] | None = None
        if request.verifiable and request.escalate_from is None:
            checks = learned.checks.find(*category)[0] if learned.checks is not None else None
            cheaper = cheap_first(choice, self.table, facts, checks, target)
            choice, plan = (cheaper, "try_cheap_first") if cheaper else (choice, "direct")
        escalating = request.escalating
        if escalating is not None:  # the admitted escalation: its tier was forced
            choice = replace(choice, reason="escalation").say(
                f"escalated from {escalating[0]} (tier {choice.tier}, attempt {escalating[1]})")
            if request.escalation_plan is not None:
                choice = choice.say(request.escalation_plan)
        decision = RouteDecision(
            decision_id="",  # the admission's, set once the whole batch is decided
            tier=choice.tier,
            model=choice.model,
            fallbacks=choice.fallbacks,
            scores={n: (None if math.isnan(v) else round(v, 6)) for n, v in scores.items()},
            reason=choice.reason,
            estimated_tokens_in=view.tokens_in,
            estimated_cost_usd=round(choice.estimated_cost_usd, 8),
            router_version=version,
            detail=choice.detail,
            propensity=choice.propensity,
            confidence=None if math.isnan(confidence) else round(confidence, 4),
            requested_model=request.model,
            ignored_fields=request.ignored_fields() or None,
            shadow=shadow,
            followed_cost_usd=self._followed_cost(request, facts) if shadow else None,
            plan=plan,
            attempt=escalating[1] if escalating is not None else None,
            escalated_from=escalating[0] if escalating is not None else None,
        )
        if pins is not None and request.run_id is not None and not request.dry_run:
            pins[run_key(request.api_key, request.run_id)] = self._pinned_as(request, decision)
        return decision

    def facts_of(self, request: RouteRequest) -> CallFacts:
        """What the decision knows of a call besides its scores (an escalation's limits)."""
        return self._facts(request, view_of(request.chat(), request.tools))

    def _verdict(self, category: tuple[Signals, str | None], learned: LearnedMap,
                 row: np.ndarray, confidence: float, target: float, rate: float,
                 facts: CallFacts) -> Verdict:
        """The learned map's verdict on one call: its category (what the caller says, its
        cluster), and each tier's estimated cost of it (where the map's allowance saves most)."""
        costs = [cost(tier, facts) for tier in self.table.tiers]
        return learned.assess(*category, row.tolist(), confidence, target, rate, costs)

    def _category(self, request: RouteRequest, cluster: int) -> tuple[Signals, str | None]:
        """What the caller says of the call, and its embedding cluster's path: the two
        lookups of the map's categories."""
        grouping = self.learning.clusters if self.learning is not None else None
        path = grouping.path(cluster) if grouping is not None else None
        return Signals(request.api_key, request.role, request.task, request.step), path

    def _facts(self, request: RouteRequest, view: CallView) -> CallFacts:
        """What the decision knows of the call besides its scores."""
        return CallFacts(
            tokens_in=view.tokens_in,
            expected_tokens_out=(request.expected_tokens_out
                                 or self.settings.expected_output_tokens),
            has_tools=request.needs_tools,
            needs=frozenset(kind for _, kind in request.capability_needs()) - {"tools"},
            task=request.task,
            role=request.role,
            key=request.api_key,
            forced_tier=request.tier,
            max_cost_usd=request.max_cost_usd,
            ceiling_tier=self._tier_of(request.model),
            ceiling_model=request.model,
            latency_sensitive=request.latency_sensitive,
        )

    def _pin(self, request: RouteRequest, pins: dict[RunKey, tuple[str | None, str | None]] | None
             ) -> tuple[str | None, str | None] | None:
        """The (tier, model) of a sticky run's earlier calls: this batch's, else the run's."""
        assert self.runs is not None and request.run_id is not None
        key = run_key(request.api_key, request.run_id)
        pin = pins.get(key) if pins is not None else None
        if pin is None:
            run = self.runs.get(key)
            pin = (run.tier, run.model) if run is not None else None
        return pin

    def _pinned_as(self, request: RouteRequest,
                   decision: RouteDecision) -> tuple[str | None, str | None]:
        """The (tier, model) a decision leaves its run on: a shadow call's own model."""
        if decision.shadow:
            return self._tier_of(request.model), request.model
        return decision.tier, decision.model

    def _sticky(self, request: RouteRequest) -> bool:
        mode = request.sticky or self.settings.runs.sticky
        return mode == "run" and request.run_id is not None and self.runs is not None and (
            not self.is_shadow(request))  # nobody follows a shadow decision: nothing to keep

    def _run_account(self, request: RouteRequest, decision: RouteDecision) -> RouteDecision:
        """Count the call's estimate in its run (not for dry_run) and say the run's spend; a
        shadow call counts, and pins the run to, the caller's own model."""
        if self.runs is None or request.run_id is None:
            return decision
        run = run_key(request.api_key, request.run_id)
        if request.dry_run:
            view = self.runs.get(run)
            spend = view.spend_usd if view is not None else 0.0
        else:
            tier, model = self._pinned_as(request, decision)
            spend = self.runs.add(run, decision.spend_estimate_usd, tier, model).spend_usd
        cap = run_cap(request, self.settings.runs)
        decision.run_spend_usd = round(spend, 8)
        decision.run_max_cost_usd = cap.usd if cap is not None else None
        return decision

    def _followed_cost(self, request: RouteRequest, facts: CallFacts) -> float | None:
        """The estimated cost of a shadow caller's own model, when a tier serves it."""
        tier = self._tier_of(request.model)
        if tier is None:
            return None
        return round(cost(self.settings.tier(tier), facts), 8)

    def _tier_of(self, model: str | None) -> str | None:
        """The configured tier a requested model names (by tier or model name), else None."""
        if model is None:
            return None
        for tier in self.settings.tiers:
            if model == tier.name or model in tier.models:
                return tier.name
        return None
