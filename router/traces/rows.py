"""What the trace store writes: its columns, and a queued decision turned into its row.

Kept apart from `router.traces.store` (the queue, the writer and the reads) so the row format is
in one short place; `prompt_hash` is shared with feedback, which joins outcomes on it.

With ``store.feature_storage: embedding`` a decision row also keeps what the classifier saw:
the embedding as float16 bytes (768 bytes for 384 dimensions), the cheap features (already in
``features``), the embedder's name and `FEATURE_VERSION`, and the model's scores before the
online adaptation (``prior_scores``). `stored_features` reads them back for learning, and says
when a row's features were made another way (another embedder or feature version).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from router.config import StoreConfig
from router.decision.features import FEATURE_NAMES, FEATURE_VERSION, CallView
from router.schemas import ChatMessage, RouteDecision, RouteRequest

DECISION_COLUMNS = (
    "decision_id", "created_at", "tier", "model", "reason", "detail", "scores", "features",
    "quality_target", "estimated_cost_usd", "tokens_in", "task", "run_id", "role", "step",
    "user_id", "router_version", "propensity", "prompt_hash", "prompt", "messages", "api_key",
    "embedding", "embedder", "feature_version", "prior_scores", "shadow", "requested_model",
    "max_cost_usd", "map_revision",
)
OUTCOME_COLUMNS = (
    "feedback_id", "decision_id", "received_at", "body_sha256", "model_used", "tier", "quality",
    "cost_usd", "cost_estimated", "tokens_in", "tokens_out", "latency_ms", "error",
    "fallback_used", "task", "run_id", "role", "step", "user_id", "propensity", "source",
    "prompt_hash", "prompt", "messages", "extra", "api_key",
)


@dataclass(frozen=True)
class Written:
    """What `TraceStore.add_outcome` did: `stored` a new outcome, found a `duplicate`, or
    `completed` the stored one with the columns in `added` (`before`: the row it had)."""

    status: Literal["stored", "duplicate", "completed"]
    row: dict[str, Any]
    added: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None


@dataclass(frozen=True)
class Seen:
    """What the classifier saw for one call, beyond its view: the embedding (float32, one row),
    the embedder that made it, the model's scores before adaptation (config tier order), and
    the revision of the learned map that decided it (None without learning), which reports
    group runs by."""

    embedding: np.ndarray
    embedder: str
    prior_scores: dict[str, float] | None = None
    map_revision: int | None = None


@dataclass(frozen=True)
class PendingDecision:
    """What the request thread hands the writer: references only, serialised later."""

    request: RouteRequest
    decision: RouteDecision
    view: CallView
    created_at: float
    seen: Seen | None = None

    def summary(self, config: StoreConfig) -> dict[str, Any]:
        """The fields feedback (and learning) need, in the shape of its stored decision row."""
        r, d = self.request, self.decision
        return {"decision_id": d.decision_id, "created_at": self.created_at, "tier": d.tier,
                "model": d.model, "estimated_cost_usd": d.spend_estimate_usd,
                "tokens_in": d.estimated_tokens_in, "task": r.task, "run_id": r.run_id,
                "role": r.role, "step": r.step, "user_id": r.user, "api_key": r.api_key,
                "propensity": d.propensity or 1.0, "prompt_hash": None,
                "router_version": d.router_version, "scores": json.dumps(d.scores),
                "reason": d.reason, "shadow": int(d.shadow), "requested_model": r.model,
                "max_cost_usd": r.max_cost_usd,
                "features": self._cheap_features(),
                **self._seen_columns(config.feature_storage == "embedding")}

    def _seen_columns(self, keep: bool) -> dict[str, Any]:
        seen = self.seen
        if seen is None:
            return {"embedding": None, "embedder": None, "feature_version": None,
                    "prior_scores": None}
        return {"embedding": encode_embedding(seen.embedding) if keep else None,
                "embedder": seen.embedder if keep else None,
                "feature_version": FEATURE_VERSION if keep else None,
                "prior_scores": json.dumps(seen.prior_scores) if seen.prior_scores else None}

    def _cheap_features(self) -> str:
        request, view = self.request, self.view
        return json.dumps({
            "tokens_in": view.tokens_in, "n_messages": len(request.chat()),
            "n_tools": len(request.tools or []),
            **dict(zip(FEATURE_NAMES, view.numeric, strict=False)),
        })

    def row(self, config: StoreConfig) -> tuple[Any, ...]:
        """The decisions-table row, in DECISION_COLUMNS order, as the store config says."""
        request, decision = self.request, self.decision
        storage = config.prompt_storage
        prompt = messages = None
        if storage == "full":
            if request.prompt is not None:
                prompt = request.prompt
            else:
                messages = json.dumps([m.model_dump(exclude_none=True) for m in request.chat()],
                                      ensure_ascii=False)
        features = self._cheap_features()
        return (
            decision.decision_id, self.created_at, decision.tier, decision.model, decision.reason,
            decision.detail, json.dumps(decision.scores), features,
            request.quality_target, decision.spend_estimate_usd, decision.estimated_tokens_in,
            request.task, request.run_id, request.role, request.step, request.user,
            decision.router_version, decision.propensity or 1.0,
            None if storage == "none" else prompt_hash(request.chat()), prompt, messages,
            request.api_key,
            *self._seen_columns(config.feature_storage == "embedding").values(),
            int(decision.shadow), request.model, request.max_cost_usd,
            None if self.seen is None else self.seen.map_revision,
        )


def prompt_hash(messages: Sequence[ChatMessage]) -> str:
    """sha256 of the conversation as sent (canonical JSON), 32 hex: joins without the text."""
    chat = [m.model_dump(exclude_none=True) for m in messages]
    text = json.dumps(chat, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def encode_embedding(vector: np.ndarray) -> bytes:
    """One embedding as float16 bytes (half the size; far below the encoder's own precision)."""
    return np.asarray(vector, dtype=np.float16).reshape(-1).tobytes()


def decode_embedding(blob: bytes | memoryview | None) -> np.ndarray | None:
    """A stored embedding as float32, or None when the row kept none."""
    if blob is None:
        return None
    return np.frombuffer(bytes(blob), dtype=np.float16).astype(np.float32)


def embedder_family(name: str | None) -> str:
    """The weights an embedder name stands for: the backends of one set of weights
    (``...@torch``, ``...@onnx-int8``) make the same vectors to within rounding."""
    return (name or "").split("@", 1)[0]


def stored_features(
    row: dict[str, Any], embedder: str, dimension: int
) -> tuple[np.ndarray, CallView] | str | None:
    """(embedding, view without text) of a stored row; None when it kept no features, or the
    reason it cannot be used (another embedder family, feature version or dimension)."""
    vector = decode_embedding(row.get("embedding"))
    if vector is None:
        return None
    if embedder_family(row.get("embedder")) != embedder_family(embedder):
        return f"embedder {row.get('embedder')}"
    if row.get("feature_version") != FEATURE_VERSION:
        return f"feature version {row.get('feature_version')}"
    if vector.shape != (dimension,):
        return f"dimension {vector.shape[0]}"
    cheap = json.loads(row["features"]) if row.get("features") else {}
    numeric = tuple(float(cheap.get(name, 0.0)) for name in FEATURE_NAMES)
    tokens = row.get("estimated_tokens_in") or row.get("tokens_in") or cheap.get("tokens_in") or 0
    return vector, CallView(text="", numeric=numeric, tokens_in=int(tokens))
