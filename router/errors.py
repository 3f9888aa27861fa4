"""One base error and a shallow tree of specific ones; the API maps them to HTTP codes."""


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


class PredictionError(RouterError):
    """The embedder or the classifier failed on a request."""


class RequestLimitError(RouterError):
    """A request breaks a configured limit or names something unknown (-> 422 / 413)."""

    def __init__(self, field: str, message: str, limit: object = None, status: int = 422):
        self.field = field
        self.limit = limit
        self.status = status
        super().__init__(f"{field}: {message}")


class ServiceUnavailable(RouterError):
    """The model is not loaded or failed, and fail_open is off (-> 503)."""


class AuthError(RouterError):
    """No known API key (-> 401), or the key lacks the scope the endpoint needs (-> 403)."""

    def __init__(self, message: str, status: int = 401):
        self.status = status
        super().__init__(message)


class RateLimited(RouterError):
    """An API key went over its requests-per-minute limit (-> 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int):
        self.retry_after = retry_after
        super().__init__(message)
