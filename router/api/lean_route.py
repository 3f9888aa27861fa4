"""A FastAPI route documented by one endpoint and served by another with fewer dependencies.

FastAPI resolves every dependency of every request through the same general machinery
(sub-dependency caches, scopes, telemetry hooks), tens of microseconds each. POST /route runs
before every LLM call, and its auth is a dependency with two sub-dependencies: the security
schemes, there so that OpenAPI documents them. A `lean_route(serve)` route keeps the documented
endpoint for OpenAPI and builds its request handler from `serve`, whose auth is the same check
as one flat dependency (`guards.auth.require_flat`). FastAPI's own handler still reads, parses
and validates the body, so status codes, error bodies and their order (unparseable JSON, then
auth, then schema errors) are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


def lean_route(serve: Callable[..., Any]) -> type[APIRoute]:
    """An APIRoute class whose handler calls `serve` (same body parameter) instead of the
    endpoint it is declared with; OpenAPI still describes the declared endpoint."""

    class LeanRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            documented = self.dependant
            served = get_dependant(path=self.path_format, call=serve)
            _check_same_body(documented.body_params, served.body_params, self.path)
            self.dependant = served
            try:
                return super().get_route_handler()
            finally:
                self.dependant = documented

    return LeanRoute


def _check_same_body(documented: list[Any], served: list[Any], path: str) -> None:
    """The handler validates the body with the documented body field: the two must agree."""
    def shape(params: list[Any]) -> list[tuple[str, Any]]:
        return [(p.name, p.field_info.annotation) for p in params]

    if shape(documented) != shape(served):
        raise TypeError(f"lean route {path}: the served endpoint's body parameters "
                        f"{shape(served)} differ from the documented {shape(documented)}")
