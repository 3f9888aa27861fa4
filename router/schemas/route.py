"""POST /route: the request (our fields, or the LLM request body an agent holds) and the answer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)
from pydantic.json_schema import JsonDict

from router.schemas.chat import ChatMessage, ContentPart, Id, ToolSchema, exactly_one_input
from router.schemas.escalation import Escalation
from router.schemas.numbers import JsonNumber

# What `quality_target` means, wherever it appears (request, config default, budgets' low knob,
# drift gauge, model metadata): one sentence, one place.
KNOB_MEANING = "relative"
QUALITY_TARGET_DOC = (
    "Route to the cheapest tier whose quality relative to the strongest tier's is at least "
    "quality_target, as a one-sided lower bound (90% by default) learned from this "
    "deployment's outcomes in the call's category (its key, role, task); where a cheaper "
    "tier's bound is below it, a logged random share of the category's calls that keeps "
    "quality_target in expectation goes there (never a dry run); a call whose category has too "
    "few outcomes yet goes to the strongest tier (0.95 = keep 95% of the strongest tier's "
    "quality; 0 = always the cheapest allowed tier, 1 = always the strongest; ties go to the "
    "cheaper tier)."
)

Reason = Literal[
    "classifier", "task_rule", "context_upgrade", "forced", "budget", "degraded", "explore",
    "ceiling", "context_downgrade", "sticky", "health_upgrade", "escalation",
]

ONE_INPUT: JsonDict = {"anyOf": [  # the schema form of `_one_input`, so clients and fuzzers see it
    {"required": ["messages"],
     "properties": {"messages": {"type": "array"}, "prompt": {"type": "null"}}},
    {"required": ["prompt"],
     "properties": {"prompt": {"type": "string"}, "messages": {"type": "null"}}},
], "dependentRequired": {"escalate_from": ["escalation"], "escalation": ["escalate_from"]}}


# Request fields of the APIs agents already call (OpenAI chat completions and Responses,
# Anthropic Messages, LiteLLM): accepted as they are; the ones routing does not use are listed
# in the answer's `ignored_fields`. An unknown name near a router field is a typo, not this.
FOREIGN_FIELDS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
    "reasoning_effort", "seed", "service_tier", "stop", "store", "stream_options",
    "temperature", "top_logprobs", "top_p", "web_search_options", "input", "instructions",
    "reasoning", "text", "truncation", "previous_response_id", "include", "stop_sequences",
    "top_k", "thinking", "container", "mcp_servers", "api_base", "api_key", "mock_response",
    "fallbacks", "num_retries", "timeout", "caching", "extra_body", "extra_headers",
})
def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # lax mode would read true as 1
        raise ValueError("Input should be a valid integer, not a boolean")
    return value


# An output budget: an integer (1.0 is one; true is not), at most a 10M-token answer.
OutputTokens = Annotated[int, Field(ge=1, le=10_000_000), BeforeValidator(_not_a_bool),
                        JsonNumber]

# What OpenAI `metadata` may carry for us when the caller cannot add top-level fields.
METADATA_IDS = ("task", "run_id", "role", "step")


class RouteRequest(BaseModel):
    """What an agent asks before an LLM call: our fields, or the LLM request body it holds."""

    model_config = ConfigDict(extra="allow", json_schema_extra=ONE_INPUT)
    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1,
        description="The chat the LLM call will send (OpenAI chat-completions, Responses-style "
                    "parts or Anthropic content blocks), exactly one of messages or prompt. "
                    "The classifier reads the latest user message and the tool results after "
                    "it; every message counts in the token estimate. 1 to limits.max_messages "
                    "(512) messages, each content at most limits.max_content_chars (1,000,000) "
                    "characters.")
    prompt: str | None = Field(
        default=None, min_length=1,
        description="A single prompt instead of messages (exactly one of the two): 1 to "
                    "limits.max_content_chars (1,000,000) characters.")
    system: str | list[ContentPart] | None = Field(
        default=None, description="Anthropic Messages' top-level system prompt.")
    tools: list[ToolSchema] | None = Field(
        default=None,
        description="The tool schemas the call offers: they count in the token estimate and "
                    "need a tier with 'tools' (unless tool_choice is 'none'). At most "
                    "limits.max_tools (256).")
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description="'none' means the tools are not needed for this call.")
    response_format: dict[str, Any] | None = Field(
        default=None, description="A JSON response_format needs a tier with 'json'.")
    max_tokens: OutputTokens | None = Field(
        default=None,
        description="The output budget: the output token estimate for cost, context and "
                    "tokens_per_minute. An integer in [1, 10,000,000]. Absent: the config's "
                    "expected_output_tokens.")
    max_completion_tokens: OutputTokens | None = Field(
        default=None,
        description="The output budget (OpenAI's newer name; wins over max_tokens): the output "
                    "token estimate for cost, context and tokens_per_minute. An integer in "
                    "[1, 10,000,000]. Absent: the config's expected_output_tokens.")
    stream: bool | None = Field(default=None, strict=True,  # 0.0 is not false
                                description="Accepted; routing is the same.")
    model: str | None = Field(
        default=None, max_length=256,
        description="The model the caller would use: echoed as requested_model. A configured "
                    "tier's name or model is a ceiling (never a dearer tier); 'auto' or an "
                    "unknown name constrains nothing.")
    metadata: dict[str, Any] | None = Field(
        default=None, description=f"May carry {', '.join(METADATA_IDS)} (string values) for "
                                  "callers that cannot add top-level fields.")
    task: str | None = Field(
        default=None, max_length=64,
        description="The agent's step kind (plan, tool_select, synthesize, critique, code, "
                    "...): the config's task_rules may fix a tier or a floor for it. At most "
                    "64 characters; also read from metadata.task.")
    # strict: a JSON true is not a number (lax mode would read it as 1.0)
    quality_target: float | None = Field(
        default=None, ge=0.0, le=1.0, strict=True, allow_inf_nan=False,
        description=QUALITY_TARGET_DOC + " Absent: the config's quality_target.")
    max_cost_usd: float | None = Field(
        default=None, ge=0.0, strict=True, allow_inf_nan=False,
        description="The most this call may cost (USD, estimated): the best-scoring tier whose "
                    "estimated cost fits; exploration never crosses it. A finite number >= 0.")
    tier: str | None = Field(default=None, max_length=64, description="Force this tier.")
    dry_run: bool = Field(
        default=False, strict=True,
        description="Evaluation traffic: answered as usual, never stored nor counted in spend.")
    latency_sensitive: bool = Field(
        default=False, strict=True,
        description="A step a user is waiting on: within its tier, the model with the lowest "
                    "observed median latency (from /feedback latency_ms) first.")
    shadow: bool | None = Field(
        default=None, strict=True,
        description="Ask what the router would choose without following it: the caller keeps "
                    "its own `model` and posts that call's outcome (`model_used`); the router "
                    "records its choice, learns from the model actually used and reports what "
                    "it would have saved (GET /spend). No ceiling, exploration or budget "
                    "refusal applies. Absent: the config's `shadow`.")
    run_id: Id | None = Field(
        default=None,
        description="The agent run the call belongs to: its spend, cap (max_run_cost_usd), "
                    "ledger (GET /runs/{run_id}) and sticky model. 1-256 characters; also read "
                    "from metadata.run_id.")
    role: Id | None = Field(
        default=None,
        description="Who in the fleet makes the call (planner, coder, ...): spend and budgets "
                    "group by it. 1-256 characters; also read from metadata.role.")
    step: Id | None = Field(
        default=None,
        description="The step of the run (any label, e.g. '4'): shown in the run's ledger. "
                    "1-256 characters; also read from metadata.step.")
    user: Id | None = Field(
        default=None,
        description="The end user the call is for (OpenAI's `user`): spend groups by it and "
                    "`tier-router forget --user` deletes their calls. 1-256 characters.")
    max_run_cost_usd: float | None = Field(
        default=None, gt=0.0, strict=True, allow_inf_nan=False,
        description="Cap of this run's spend (run_id): once reached, /route answers 402. A "
                    "configured cap (runs:) can be tightened here, never loosened.")
    sticky: Literal["run", "none"] | None = Field(
        default=None, description="'run': stay on the model of the run's earlier calls unless "
                                  "this call needs a stronger tier or a budget or the model's "
                                  "health forces a change. Absent: the config's runs.sticky.")
    verifiable: bool = Field(
        default=False, strict=True,
        description="The caller checks the answer (it parses, the tests pass, ...) and "
                    "escalates on a failure (escalate_from): where the learned map's check "
                    "evidence for the call's category says a cheaper tier's answers pass often "
                    "and are good when they pass, the router answers that tier to try first "
                    "(plan: try_cheap_first) when it costs less on average, the wasted calls "
                    "included, and the plan's expected final quality keeps the quality target; "
                    "else the map's tier (plan: direct). Its escalations plan the same way.")
    escalate_from: Id | None = Field(
        default=None,
        description="The decision_id whose answer failed (with `escalation` saying how): that "
                    "answer counts as a failure of its tier for this call, and the answer is "
                    "a stronger tier for the same call, in the same run, within the first "
                    "decision's ceiling (model) and max_cost_usd. Each decision can be "
                    "escalated from once (409 after that, naming the decision it went to); "
                    "from the strongest tier, or when no stronger tier fits: 409.")
    escalation: Escalation | None = Field(
        default=None, description="Why the answer of `escalate_from` failed; required with it.")

    # Set by the server after authentication, never by the client: which key made the call,
    # for per-key budgets and spend. None when the service runs without keys.
    _api_key: str | None = PrivateAttr(default=None)
    _chat: list[ChatMessage] | None = PrivateAttr(default=None)  # built once: read ~5x a call
    # Set by the server for an escalation it admitted: (decision escalated from, attempt).
    _escalating: tuple[str, int] | None = PrivateAttr(default=None)
    _escalation_plan: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_input(self) -> RouteRequest:
        exactly_one_input(self)
        if (self.escalate_from is None) != (self.escalation is None):
            missing = "escalation" if self.escalation is None else "escalate_from"
            raise ValueError(f"'escalate_from' and 'escalation' go together: {missing!r} is "
                             "missing")
        ids = self.metadata or {}
        for key in METADATA_IDS:
            value = ids.get(key)
            if getattr(self, key) is None and isinstance(value, str) and 0 < len(value) <= 64:
                setattr(self, key, value)
        return self

    @property
    def api_key(self) -> str | None:
        """The name (not the secret) of the API key the call came with."""
        return self._api_key

    def attribute_to(self, api_key: str | None) -> RouteRequest:
        """Record the authenticated key's name on the request; returns it for chaining."""
        self._api_key = api_key
        return self

    @property
    def escalating(self) -> tuple[str, int] | None:
        """(the decision escalated from, this call's attempt), once the server admitted the
        escalation; None for every other call."""
        return self._escalating

    @property
    def escalation_plan(self) -> str | None:
        """Why a verifiable call's escalation tries the tier it does, when a plan chose it."""
        return self._escalation_plan

    def escalate_as(self, tier: str, from_decision: str, attempt: int,
                    plan: str | None = None) -> RouteRequest:
        """Mark the request as the admitted escalation to `tier` (`plan`: why, when a plan put
        it there); returns it for chaining."""
        self.tier = tier
        self._escalating = (from_decision, attempt)
        self._escalation_plan = plan
        return self

    def chat(self) -> list[ChatMessage]:
        """The request as chat messages, whichever form it came in."""
        if self._chat is None:
            messages = self.messages if self.messages is not None else [
                ChatMessage(role="user", content=self.prompt)]
            if self.system is not None:
                messages = [ChatMessage(role="system", content=self.system), *messages]
            self._chat = messages
        return self._chat

    @property
    def expected_tokens_out(self) -> int | None:
        """The caller's own output budget, when it gave one."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def needs_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice not in ("none", {"type": "none"})

    @property
    def needs_json(self) -> bool:
        kind = (self.response_format or {}).get("type")
        return kind in ("json_object", "json_schema")

    def capability_needs(self) -> list[tuple[str, str]]:
        """(field, capability) of everything in the call a tier must be able to take: tools,
        a JSON response_format, each image or audio part (its field path as the API names it)."""
        needs = [("tools", "tools")] if self.needs_tools else []
        if self.needs_json:
            needs.append(("response_format", "json"))
        offset = 1 if self.system is not None else 0  # chat() puts it first
        for i, message in enumerate(self.chat()):
            where = "system" if i < offset else (
                f"messages.{i - offset}.content" if self.messages is not None else "prompt")
            needs += [(f"{where}.{part}", kind) for part, kind in message.media()]
        return needs

    def ignored_fields(self) -> list[str]:
        """Fields of the body that routing does not use (echoed so nothing passes silently)."""
        return sorted(self.model_extra or {})


def misspelt_field(name: str, fields: Iterable[str] | None = None) -> str | None:
    """The router field an unknown request field is a typo of, if any: a typo in a safety field
    (max_cost_usd, quality_target, dry_run, ...) must not pass silently. Within edit distance 2
    (a swap of two neighbours counts 1) of a field of six letters or more, within 1 of a
    shorter one: at distance 2 every four-letter word is near `role`, `step` or `task`.
    `fields`: another model's fields (default: RouteRequest's)."""
    if name in FOREIGN_FIELDS:
        return None
    near = [(edit_distance(name.lower(), f), f) for f in (fields or RouteRequest.model_fields)]
    distance, field = min(near)
    return field if distance <= (2 if len(field) >= 6 else 1) else None


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            swap = d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, swap)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


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
        default=None, description="P(this tier) under the logged draw (exploration, the "
        "learned map's allowance); absent when the service draws nothing (no exploration, no "
        "learning)."
    )
    requested_model: str | None = Field(
        default=None, description="The request's own `model`, echoed.")
    shadow: bool = Field(
        default=False, description="Not followed: the caller keeps its own model (shadow mode).")
    followed_cost_usd: float | None = Field(
        default=None, description="Shadow mode: the estimated cost of the caller's own model "
                                  "(when it is a configured tier's), beside estimated_cost_usd.")
    ignored_fields: list[str] | None = Field(
        default=None, description="Fields of the request that routing did not use.")
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="How far the model's own per-call scores were trusted: 1 for a call like "
                    "the training data; lower for one unlike it, whose scores were pulled "
                    "toward each tier's pooled quality (detail says so). Absent when the model "
                    "has no such guard.",
    )
    run_spend_usd: float | None = Field(
        default=None, description="The run's spend so far, this call's estimate included "
                                  "(reported costs where feedback came back); with a run_id.")
    run_max_cost_usd: float | None = Field(
        default=None, description="The cap the run's spend is held to, when one applies.")
    plan: Literal["direct", "try_cheap_first"] | None = Field(
        default=None,
        description="For a verifiable call: try_cheap_first (check the answer, escalate on a "
                    "failure) or direct; absent for other calls.")
    attempt: int | None = Field(
        default=None, ge=2,
        description="An escalation's place in its call's chain: 2 for the first escalation, "
                    "3 for the next; absent on a first decision.")
    escalated_from: str | None = Field(
        default=None, description="The decision this one escalates from; absent otherwise.")

    @property
    def spend_estimate_usd(self) -> float:
        """What the call made will cost by estimate: in shadow mode the caller's own model's
        (the router's pick's when that model is not a configured tier's)."""
        if self.shadow and self.followed_cost_usd is not None:
            return self.followed_cost_usd
        return self.estimated_cost_usd


class BatchRouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[RouteRequest] = Field(min_length=1)


class BatchRouteResponse(BaseModel):
    decisions: list[RouteDecision]


