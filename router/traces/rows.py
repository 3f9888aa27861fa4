"""What the trace store writes: its columns, and a queued decision turned into its row.

Kept apart from `router.traces.store` (the queue, the writer and the reads) so the row format is
in one short place; `prompt_hash` is shared with feedback, which joins outcomes on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from router.decision.features import FEATURE_NAMES, CallView
from router.schemas import ChatMessage, RouteDecision, RouteRequest

DECISION_COLUMNS = (
    "decision_id", "created_at", "tier", "model", "reason", "detail", "scores", "features",
    "quality_target", "estimated_cost_usd", "tokens_in", "task", "run_id", "role", "step",
    "user_id", "router_version", "propensity", "prompt_hash", "prompt", "messages", "api_key",
)
OUTCOME_COLUMNS = (
    "feedback_id", "decision_id", "received_at", "body_sha256", "model_used", "tier", "quality",
    "cost_usd", "cost_estimated", "tokens_in", "tokens_out", "latency_ms", "error",
    "fallback_used", "task", "run_id", "role", "step", "user_id", "propensity", "source",
    "prompt_hash", "prompt", "messages", "extra",
)


@dataclass(frozen=True)
class PendingDecision:
    """What the request thread hands the writer: references only, serialised later."""

    request: RouteRequest
    decision: RouteDecision
    view: CallView
    created_at: float

    def summary(self) -> dict[str, Any]:
        """The fields feedback needs, in the shape of a stored decision row."""
        r, d = self.request, self.decision
        return {"decision_id": d.decision_id, "created_at": self.created_at, "tier": d.tier,
                "model": d.model, "estimated_cost_usd": d.estimated_cost_usd,
                "tokens_in": d.estimated_tokens_in, "task": r.task, "run_id": r.run_id,
                "role": r.role, "step": r.step, "user_id": r.user, "api_key": r.api_key,
                "propensity": d.propensity or 1.0, "prompt_hash": None, "scores": d.scores}

    def row(self, storage: str) -> tuple[Any, ...]:
        """The decisions-table row, in DECISION_COLUMNS order; `storage` is store.prompt_storage."""
        request, decision, view = self.request, self.decision, self.view
        prompt = messages = None
        if storage == "full":
            if request.prompt is not None:
                prompt = request.prompt
            else:
                messages = json.dumps([m.model_dump(exclude_none=True) for m in request.chat()],
                                      ensure_ascii=False)
        features = {
            "tokens_in": view.tokens_in, "n_messages": len(request.chat()),
            "n_tools": len(request.tools or []),
            **dict(zip(FEATURE_NAMES, view.numeric, strict=False)),
        }
        return (
            decision.decision_id, self.created_at, decision.tier, decision.model, decision.reason,
            decision.detail, json.dumps(decision.scores), json.dumps(features),
            request.quality_target, decision.estimated_cost_usd, decision.estimated_tokens_in,
            request.task, request.run_id, request.role, request.step, request.user,
            decision.router_version, decision.propensity or 1.0,
            None if storage == "none" else prompt_hash(request.chat()), prompt, messages,
            request.api_key,
        )


def prompt_hash(messages: Sequence[ChatMessage]) -> str:
    """sha256 of the conversation as sent (canonical JSON), 32 hex: joins without the text."""
    chat = [m.model_dump(exclude_none=True) for m in messages]
    text = json.dumps(chat, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
