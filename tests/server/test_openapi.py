"""The OpenAPI document is valid and the server keeps to it (a bounded schemathesis run)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from starlette.testclient import TestClient

from hitl_agent.server import create_app

APP = create_app(":memory:", scheduler_interval=None)
CREDS = APP.state.hitl.bootstrap(api_key="schema-key", reviewer_token="schema-reviewer")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _close_app() -> Iterator[None]:
    yield
    APP.state.hitl.close()


def test_document_is_openapi_3_and_covers_every_api_route() -> None:
    with TestClient(APP) as http:
        document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = set(document["paths"])
    for path in (
        "/v1/test",
        "/v1/api/loops/{loop_id}/requests",
        "/v1/api/requests/{request_id}/feedback",
        "/v1/reviewer/requests/{request_id}/respond",
    ):
        assert path in paths


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    token = CREDS.reviewer_token if case.path.startswith("/v1/reviewer") else CREDS.api_key
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
