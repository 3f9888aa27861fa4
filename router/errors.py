"""One base error and a shallow tree of specific ones; `router.api.errors` maps them to HTTP."""


class RouterError(Exception):
    """Base of every error tier-router raises on purpose."""


class ConfigError(RouterError):
    """The configuration file is missing, unreadable or invalid."""


class ArtifactError(RouterError):
    """A model directory is missing, corrupt, or was built for another embedder or library."""


class NotFittedError(RouterError):
    """An estimator was used before `fit`."""


class TraceError(RouterError):
    """A trace record breaks the TRACES.md contract (carries line number and field)."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None):
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class RequestLimitError(RouterError):
    """A request breaks a configured limit or names something unknown (-> 422)."""

    def __init__(self, field: str, message: str, limit: object = None):
        self.field = field
        self.limit = limit
        super().__init__(f"{field}: {message}")


class ServiceUnavailable(RouterError):
    """The model is not loaded or failed, and fail_open is off (-> 503)."""


class ServiceNotStarted(ServiceUnavailable):
    """A request arrived before the service finished starting, or after it stopped (-> 503)."""


class StoreError(RouterError):
    """The trace store is disabled, unreachable, or refused a write (-> 503)."""


class UnknownDecision(RouterError):
    """Feedback names a decision_id the store has never seen (-> 404)."""

    def __init__(self, decision_id: str, retry_after: int = 1):
        self.decision_id = decision_id
        self.retry_after = retry_after
        super().__init__(
            f"no decision with decision_id {decision_id!r} was recorded; one just made by "
            f"another replica may not be written yet: retry in {retry_after} s")


class FeedbackConflict(RouterError):
    """Feedback for a decision that already has a different outcome stored (-> 409)."""


class EscalationRefused(RouterError):
    """An escalation that cannot be made (-> 409): the decision was escalated from already
    (`escalated_to` names where it went), it is on the strongest tier, or no stronger tier
    fits the call's limits (`limit` names which)."""

    def __init__(self, message: str, *, escalated_to: str | None = None,
                 limit: object = None):
        self.escalated_to = escalated_to
        self.limit = limit
        super().__init__(message)


class BudgetExhausted(RouterError):
    """A role's budget is spent for the current period (-> 402, naming it and its reset)."""

    def __init__(self, name: str, limit_usd: float, spent_usd: float, resets_at: str):
        self.name = name
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.resets_at = resets_at
        super().__init__(
            f"budget '{name}' is spent ({spent_usd:.4f} of {limit_usd:.4f} USD); it resets at "
            f"{resets_at}"
        )


class RunCeilingReached(RouterError):
    """A run's spend reached its cap (-> 402, naming the run, its spend and the cap)."""

    def __init__(self, run_id: str, spent_usd: float, cap_usd: float, source: str):
        self.run_id = run_id
        self.spent_usd = spent_usd
        self.cap_usd = cap_usd
        self.source = source
        super().__init__(
            f"run '{run_id}' has spent {spent_usd:.6f} USD, reaching its cap of {cap_usd:.6f} "
            f"USD ({source}); a new run_id starts a new run"
        )


class FeatureOff(RouterError):
    """An endpoint whose config switch is off (-> 404, naming the switch)."""


class UnknownRun(RouterError):
    """No run with this run_id is visible to the caller, or it expired (-> 404)."""


class AuthError(RouterError):
    """No known API key (-> 401)."""


class Forbidden(AuthError):
    """A known API key without the scope the endpoint needs (-> 403)."""


class RateLimited(RouterError):
    """An API key went over its requests-per-minute limit (-> 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int):
        self.retry_after = retry_after
        super().__init__(message)


class NoHealthyModel(ServiceUnavailable):
    """Every model the call may use has an open circuit (-> 503 naming the tier, Retry-After)."""

    def __init__(self, tier: str, message: str, retry_after: int):
        self.tier = tier
        self.retry_after = retry_after
        super().__init__(message)


class SharedStateUnavailable(RateLimited):
    """Redis (``shared_state``) is unreachable and ``on_unavailable`` is ``refuse`` (-> 429)."""
