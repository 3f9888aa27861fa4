"""Request and response models of the HTTP API, named by role."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict

# What `quality_target` means, wherever it appears (request, config default, budgets' low knob,
# drift gauge, model metadata): one sentence, one place.
KNOB_MEANING = "relative"
QUALITY_TARGET_DOC = (
    "Route to the cheapest tier whose predicted quality is at least quality_target times the "
    "best tier's predicted quality for this call (0 = always the cheapest allowed tier, "
    "1 = the tier predicted best; ties go to the cheaper tier)."
)

Reason = Literal[
    "classifier", "task_rule", "context_upgrade", "forced", "budget", "degraded", "explore"
]
Id = Annotated[str, Field(min_length=1, max_length=256)]


class TextPart(BaseModel):
    """A content part; only text parts are routable (images are refused with a clear 422)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: str = "function"
    function: dict[str, Any] = Field(default_factory=dict)


HAS_CONTENT: JsonDict = {"anyOf": [  # the schema form of `_has_content`
    {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
    {"required": ["role", "tool_calls"],
     "properties": {"role": {"const": "assistant"},
                    "tool_calls": {"type": "array", "minItems": 1}}},
]}


class ChatMessage(BaseModel):
    """One OpenAI chat message: system, developer, user, assistant or tool."""

    model_config = ConfigDict(extra="allow", json_schema_extra=HAS_CONTENT)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: Any) -> Any:
        if isinstance(value, list):
            for i, part in enumerate(value):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind != "text":
                    raise ValueError(
                        f"content part {i} has type {kind!r}; only 'text' parts can be routed"
                    )
        return value

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(
                f"a '{self.role}' message needs 'content' (only an assistant message with "
                "'tool_calls' may omit it)"
            )
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class ToolSchema(BaseModel):
    """An OpenAI tool definition; only its presence and size matter to routing."""

    model_config = ConfigDict(extra="allow")
    type: str = "function"
    function: dict[str, Any] = Field(default_factory=dict)


def _exactly_one_input(model: Any) -> Any:
    """A call is given as chat `messages` or as a `prompt`, never both, never neither."""
    if (model.messages is None) == (model.prompt is None):
        raise ValueError("give exactly one of 'messages' (a non-empty list) or 'prompt'")
    return model


ONE_INPUT: JsonDict = {"anyOf": [  # the schema form of `_one_input`, so clients and fuzzers see it
    {"required": ["messages"],
     "properties": {"messages": {"type": "array"}, "prompt": {"type": "null"}}},
    {"required": ["prompt"],
     "properties": {"prompt": {"type": "string"}, "messages": {"type": "null"}}},
]}


class RouteRequest(BaseModel):
    """What an agent asks before an LLM call."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_INPUT)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    tools: list[ToolSchema] | None = None
    task: str | None = Field(default=None, max_length=64)
    # strict: a JSON true is not a number (lax mode would read it as 1.0)
    quality_target: float | None = Field(
        default=None, ge=0.0, le=1.0, strict=True,
        description=QUALITY_TARGET_DOC + " Absent: the config's quality_target.")
    max_cost_usd: float | None = Field(default=None, ge=0.0, strict=True)
    tier: str | None = Field(default=None, max_length=64, description="Force this tier.")
    run_id: Id | None = None
    role: Id | None = None
    step: Id | None = None
    user: Id | None = None

    # Set by the server after authentication, never by the client: which key made the call,
    # for per-key budgets and spend. None when the service runs without keys.
    _api_key: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_input(self) -> RouteRequest:
        return _exactly_one_input(self)

    @property
    def api_key(self) -> str | None:
        """The name (not the secret) of the API key the call came with."""
        return self._api_key

    def attribute_to(self, api_key: str | None) -> RouteRequest:
        """Record the authenticated key's name on the request; returns it for chaining."""
        self._api_key = api_key
        return self

    def chat(self) -> list[ChatMessage]:
        """The request as chat messages, whichever form it came in."""
        if self.messages is not None:
            return self.messages
        return [ChatMessage(role="user", content=self.prompt)]


class RouteDecision(BaseModel):
    """The router's answer: which tier and model, what to try next, how sure, what it costs."""

    decision_id: str
    tier: str
    model: str
    fallbacks: list[str]
    scores: dict[str, float | None] = Field(
        description="Tier -> its predicted quality for this call (expected share of calls it "
                    "answers well), cheapest first; null when degraded."
    )
    reason: Reason
    estimated_tokens_in: int
    estimated_cost_usd: float
    router_version: str
    detail: str | None = None
    propensity: float | None = Field(
        default=None, description="P(this tier) under exploration; absent when it was certain."
    )
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="How far the model's own per-call scores were trusted: 1 for a call like "
                    "the training data; lower for one unlike it, whose scores were pulled "
                    "toward each tier's pooled quality (detail says so). Absent when the model "
                    "has no such guard.",
    )


class BatchRouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[RouteRequest] = Field(min_length=1)


class BatchRouteResponse(BaseModel):
    decisions: list[RouteDecision]


Cost = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


class _Labelled(BaseModel):
    """A label, as in TRACES.md: `quality`, or `success` as its shorthand (quality wins).

    `success` is declared before `quality` so a missing label is reported on 'quality'.
    """

    success: bool | None = None
    quality: float | None = Field(
        default=None, ge=0.0, le=1.0, allow_inf_nan=False, validate_default=True
    )

    @field_validator("quality")
    @classmethod
    def _a_label(cls, quality: float | None, info: ValidationInfo) -> float | None:
        if quality is None and info.data.get("success") is None:
            raise ValueError("give 'quality' (a number in [0, 1]) or 'success' (true or false)")
        return quality

    def label(self) -> float:
        return self.quality if self.quality is not None else float(bool(self.success))


class Feedback(_Labelled):
    """How a routed call went (POST /feedback); one outcome per decision_id."""

    model_config = ConfigDict(extra="forbid")
    decision_id: Id
    model_used: str | None = Field(default=None, min_length=1, max_length=256)
    cost_usd: Cost | None = None
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    latency_ms: Cost | None = None
    error: str | None = Field(default=None, max_length=10_000)
    fallback_used: bool = False


class TraceRecord(_Labelled):
    """A call in the TRACES.md format, e.g. one that bypassed the router; unknown fields kept."""

    model_config = ConfigDict(extra="allow")
    prompt_id: Id | None = None
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    model: str = Field(min_length=1, max_length=256)
    tier: str | None = Field(default=None, max_length=64)
    cost_usd: Cost | None = None
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    latency_ms: Cost | None = None
    task: str | None = Field(default=None, max_length=64)
    run_id: Id | None = None
    role: Id | None = None
    step: Id | None = None
    user: Id | None = None
    decision_id: Id | None = None
    propensity: float | None = Field(default=None, gt=0.0, le=1.0)
    source: Id | None = None
    timestamp: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_input(self) -> TraceRecord:
        return _exactly_one_input(self)


class FeedbackReceipt(BaseModel):
    """`stored` the first time, `duplicate` when the same outcome was already stored."""

    feedback_id: str
    decision_id: str | None
    status: Literal["stored", "duplicate"]


class SpendRow(BaseModel):
    key: str | None
    calls: int
    cost_usd: float = Field(description="actual_usd + estimated_usd.")
    actual_usd: float = Field(description="Cost reported in feedback.")
    estimated_usd: float = Field(description="Estimated where no real cost came back.")
    estimated_calls: int


# What spend can be grouped by: the request's attribution ids, where it went, and which API key.
SpendKey = Literal["role", "run_id", "step", "tier", "model", "user", "api_key"]


class SpendReport(BaseModel):
    by: str
    since: float | None
    rows: list[SpendRow]


class TierInfo(BaseModel):
    name: str
    models: list[str]
    input_price_per_m: float
    output_price_per_m: float
    context_window: int
    capabilities: list[str]


class Problem(BaseModel):
    """One thing wrong with a request: the field (dotted path), what is wrong, the limit."""

    field: str
    message: str
    limit: Any = None


class ErrorBody(BaseModel):
    """Every error answer: a short kind, then the problems (4xx) or a sentence (others)."""

    error: str
    detail: list[Problem] | str | None = None


class Readiness(BaseModel):
    ready: bool
    router_version: str
    reason: str | None = None


_ERRORS = {
    400: "The body could not be parsed (not UTF-8 / not JSON).",
    401: "No API key, or an unknown one.",
    403: "The API key lacks the scope this endpoint needs.",
    408: "The request took longer than limits.request_timeout_s (names the limit).",
    409: "Refused: a reload whose config or model is invalid (the old one keeps serving).",
    422: "The request breaks the schema or a configured limit (body size included); names the "
         "field and the limit.",
    429: "The API key is over its requests-per-minute limit; see Retry-After.",
    503: "The model is not loaded and fail_open is off.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error answers an endpoint can give."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _ERRORS[code]}
        if code == 429:
            entry["headers"] = {"Retry-After": {
                "description": "Seconds until the key may call again.",
                "schema": {"type": "integer"}}}
        if code == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[code] = entry
    return out
