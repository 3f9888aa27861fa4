"""A bounded schemathesis run against the app's own OpenAPI schema: no 5xx, and every answer
conforms (status documented, body and headers as declared, bad input refused, auth enforced).

In-process (ASGI) with the fake embedder and the synthetic model. One API key with every scope
is sent on each call, so schemathesis's auth check (the same call without it must be refused)
runs too. Each operation is fuzzed with schema-valid and schema-invalid data, ``MAX_EXAMPLES``
cases each, derandomised so a failure reproduces. (Hypothesis strategies are driven directly
rather than through ``schema.parametrize``: schemathesis's fixture loader breaks on pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from router.api.app import create_app
from router.config import AuthConfig, StoreConfig, load_settings
from tests.conftest import FakeEmbedder
from tests.unit.guards.test_auth import entry

KEY = "fuzz-key"
MAX_EXAMPLES = 30
# Operations that still get only the "no 5xx" check, and why; remove an entry once it conforms.
SERVER_ERRORS_ONLY: dict[str, str] = {}
# Rules JSON Schema cannot state, so a schema-valid body may still be a 422, but only for them:
# route bodies allow unknown fields except a near-miss of a router field (a typo in a safety
# field must not pass; "not within edit distance 2 of these names" has no schema), and
# feedback's cached input tokens are part of its input tokens (a relation between two fields),
# and a report is bounded by its model's context window and prices (the config's, not the
# schema's); a run's outcome needs one of two fields; the map's tier filter names a configured
# tier, and a category to forget must be one the map has evidence of (the store's, at the time).
CROSS_FIELD_RULES = {
    "POST /route": ("did you mean", "go together"),
    "POST /route/batch": ("did you mean", "go together", "send it to POST /route on its own"),
    "POST /feedback": ("cached input tokens are part of the input", "limits.report_slack",
                       "no configured tier's model"),
    "POST /runs/{run_id}/outcome": ("give 'success', 'quality' or both",),
    "GET /map": ("is not one of the tiers",),
    "POST /admin/map/reset": ("in the learned map's evidence",),
    "POST /verify": ("go together",),  # its `request` is a /route body, with /route's rules
}


@pytest.fixture
def api_schema(model_dir: Path, tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    """A fresh app per test: schemathesis's plugin ends ASGI lifespans at each test's end."""
    auth = AuthConfig.model_validate({"keys": [entry("fuzz", KEY, ["route", "feedback", "admin"])]})
    store = StoreConfig(url=f"sqlite:///{tmp_path / 'traces.db'}")
    config = load_settings(None, environ={}).model_copy(
        update={"model_dir": model_dir, "auth": auth, "store": store})
    app = create_app(settings=config, embedder_factory=lambda cfg: FakeEmbedder())
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @schema.auth()
    class FuzzKey:
        """Explicit auth: schemathesis then also checks that dropping it is refused."""

        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            return KEY

        def set(self, case: schemathesis.Case, key: str, context: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}

    yield schema
    schemathesis.python.asgi.shutdown_lifespans()


def operations(schema: schemathesis.BaseSchema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms(api_schema, mode: GenerationMode) -> None:
    failures: dict[str, BaseException] = {}
    for operation in operations(api_schema):

        @given(case=operation.as_strategy(generation_mode=mode, auth_storage=api_schema.auth))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            if case.operation.label in SERVER_ERRORS_ONLY:
                case.call_and_validate(checks=[not_a_server_error])
            elif case.operation.label in CROSS_FIELD_RULES and mode is GenerationMode.POSITIVE:
                answer = case.call_and_validate(excluded_checks=[positive_data_acceptance])
                if answer.status_code == 422:
                    rules = CROSS_FIELD_RULES[case.operation.label]
                    assert any(rule in answer.text for rule in rules), answer.text
            else:
                case.call_and_validate()

        try:
            fuzz()
        except Unsatisfiable:  # no input to break (e.g. GET /healthz has no parameters)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, then report
            failures[operation.label] = exc
    assert not failures, "\n\n".join(
        f"{label}:\n{_describe(exc)}" for label, exc in failures.items())
    assert len(operations(api_schema)) >= 7


def _describe(exc: BaseException) -> str:
    inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
    return f"{exc}\n" + "\n".join(f"  {type(e).__name__}: {e}"[:2000] for e in inner)
