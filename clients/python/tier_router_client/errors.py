"""One base error and two specific ones: the router could not be reached, or it refused."""

from __future__ import annotations

from typing import Any


class TierRouterError(Exception):
    """Base of every error this client raises."""


class RouterUnavailable(TierRouterError):
    """The router could not answer: no connection, a timeout, or 5xx/408/429 after retries."""


class RouterRefused(TierRouterError):
    """The router answered with a 4xx: the request itself is wrong (or over a limit, a budget,
    a scope); retrying it unchanged will not help, and failing open would hide it."""

    def __init__(self, status_code: int, detail: Any):
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"tier-router refused the request ({status_code}): {detail}")
