"""The client maps an LLM call's exception to the /feedback error kind the service counts."""

from __future__ import annotations

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the client's integrations are not installed")
litellm = pytest.importorskip("litellm", reason="the client's integrations are not installed")

from tier_router_client._calls import error_kind  # noqa: E402

REQUEST = httpx.Request("POST", "http://llm.test/v1/chat/completions")


def status(code: int) -> httpx.Response:
    return httpx.Response(code, request=REQUEST)


@pytest.mark.parametrize(("exc", "kind"), [
    (openai.APITimeoutError(REQUEST), "timeout"),
    (openai.APIConnectionError(request=REQUEST), "server_error"),
    (openai.RateLimitError("slow down", response=status(429), body=None), "rate_limited"),
    (openai.InternalServerError("down", response=status(503), body=None), "server_error"),
    (openai.BadRequestError("bad", response=status(400), body=None), "bad_request"),
    (openai.AuthenticationError("who", response=status(401), body=None), "auth"),
    (litellm.Timeout("slow", model="m", llm_provider="p"), "timeout"),
    (litellm.RateLimitError("slow", llm_provider="p", model="m"), "rate_limited"),
    (litellm.ServiceUnavailableError("down", llm_provider="p", model="m"), "server_error"),
    (litellm.ContextWindowExceededError("long", model="m", llm_provider="p"), "bad_request"),
    (litellm.ContentPolicyViolationError("no", model="m", llm_provider="p"), "content_filter"),
    (RuntimeError("something else"), "other"),
])
def test_exceptions_map_to_the_kinds_the_service_counts(exc: Exception, kind: str) -> None:
    assert error_kind(exc) == kind
