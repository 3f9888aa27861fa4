"""Request and response models of the HTTP API, named by role; shared by every layer.

`chat` holds the messages a call carries (OpenAI, Responses API and Anthropic shapes), `route`
the /route request and answer (and what `quality_target` means), `feedback` outcomes and spend,
`learned` the learned map's page, `ops` tiers, readiness and error bodies, `health` the error
kinds feedback names and a model's health. Import from here; the modules are how it is kept short.
"""

from router.schemas.chat import (
    PART_CAPABILITY,
    PART_TYPES,
    ChatMessage,
    ContentPart,
    Id,
    ToolCall,
    ToolSchema,
    exactly_one_input,
)
from router.schemas.escalation import Escalation, EscalationReason, EscalationReport
from router.schemas.feedback import (
    OBSERVED,
    Feedback,
    FeedbackReceipt,
    ShadowReport,
    SpendKey,
    SpendReport,
    SpendRow,
    TraceRecord,
    with_suggestions,
)
from router.schemas.health import (
    ERROR_KINDS,
    HEALTH_ERRORS,
    Attempt,
    CircuitState,
    ErrorKind,
    ModelHealthInfo,
)
from router.schemas.learned import MapCategory, MapPage, MapReset, MapTier
from router.schemas.ops import (
    EMPTY_JSON_BODY,
    ErrorBody,
    Problem,
    Readiness,
    TierInfo,
    error_responses,
)
from router.schemas.route import (
    FOREIGN_FIELDS,
    KNOB_MEANING,
    QUALITY_TARGET_DOC,
    BatchRouteRequest,
    BatchRouteResponse,
    Reason,
    RouteDecision,
    RouteRequest,
    edit_distance,
    misspelt_field,
)
from router.schemas.runs import (
    RevisionRunCosts,
    RunCostFigures,
    RunCosts,
    RunKey,
    RunLedger,
    RunList,
    RunOutcome,
    RunOutcomeInfo,
    RunOutcomeReceipt,
    RunStep,
    RunSummary,
)
from router.schemas.verify import VerifyAnswer, VerifyRequest

__all__ = [
    "EMPTY_JSON_BODY", "FOREIGN_FIELDS", "KNOB_MEANING", "OBSERVED", "PART_CAPABILITY",
    "PART_TYPES", "QUALITY_TARGET_DOC",
    "BatchRouteRequest", "BatchRouteResponse", "ChatMessage", "ContentPart", "ErrorBody",
    "Escalation", "EscalationReason", "EscalationReport",
    "Feedback", "FeedbackReceipt", "Id", "MapCategory", "MapPage", "MapReset", "MapTier", "Problem",
    "Readiness", "Reason", "RevisionRunCosts", "RouteDecision", "RouteRequest", "RunCostFigures",
    "RunCosts", "RunKey", "RunLedger", "RunList", "RunOutcome", "RunOutcomeInfo",
    "RunOutcomeReceipt", "RunStep", "RunSummary", "ShadowReport",
    "SpendKey", "SpendReport", "SpendRow", "TierInfo", "ToolCall", "ToolSchema",
    "TraceRecord", "edit_distance", "error_responses", "exactly_one_input", "misspelt_field",
    "with_suggestions", "VerifyAnswer", "VerifyRequest",
    "ERROR_KINDS", "HEALTH_ERRORS", "Attempt", "CircuitState", "ErrorKind", "ModelHealthInfo",
]
