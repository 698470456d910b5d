"""Schemathesis against the served OpenAPI schema (`/api/v1/schema/`): every operation, with data
that fits the schema and data that does not, anonymously, as a signed-in data scientist and as the
data steward. No answer may be a 5xx; every status must be one the schema documents for the
operation, and every body must match its documented schema (errors: the one `Error` shape that
portal.api.errors.document_error_responses adds to every operation) and be JSON.

The number of examples per operation is bounded (SYNTHGATE_FUZZ_EXAMPLES, 12 by default) so the
run stays under about three minutes on two cores; raise it locally to search harder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

# No 5xx; every status documented for the operation; every body (errors included) as documented.
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("SYNTHGATE_FUZZ_EXAMPLES", "12"))


# Loaded when the module is collected, from the served schema (no database needed to serve it).
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES, database="none"
)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(db: Any, dataset: Any) -> Iterator[None]:
    """Requests go through the real WSGI handler, as a server runs it. Like Django's test client,
    it must not close the database connection after each request (that would end the test's
    transaction). `dataset` gives the scientist a signed-off table to see and file requests
    against, so the fuzz reaches past "not found"."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def identities(api: Any, alice: Any, sam: Any) -> list[dict[str, str]]:
    """Anonymous, a data scientist (files requests), and the data steward (declares columns), so
    both the request and the dataset endpoints are reached past their permission checks."""
    return [{}] + [{"Authorization": api(user)._credentials["HTTP_AUTHORIZATION"]} for user in (alice, sam)]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the checkout; derandomized runs repeat anyway
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_5xx_or_a_non_json_error(case: Any, identities: list[dict[str, str]]) -> None:
    for headers in identities:
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)
        _assert_error_shape(response, case)


def _assert_error_shape(response: Any, case: Any) -> None:
    if response.status_code < 400:
        return
    where = f"{case.method} {case.formatted_path}: {response.status_code}"
    content_type = (response.headers.get("content-type") or [""])[0]  # lowercase keys, list values
    assert content_type.startswith("application/json"), f"{where} answered {content_type}"
    error = json.loads(response.content)["error"]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), where
