"""Fuzzing: schemathesis generates valid and invalid requests from the API's OpenAPI document and sends
them to the real server; no answer may be a 5xx or break the documented schema (status codes, content
types, response bodies). Bounded examples per operation keep it a regular test.

The document is built at collection time from an app on a throwaway controller (schemathesis needs it to
generate the test cases), and checked to be exactly what the running server publishes.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from api_harness import ADMIN, Server
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tropic.api import AuditLog, TokenStore, create_app
from tropic.drivers import SimDriver
from tropic.scenario import build_datacenter
from tropic.txn import Controller

MAX_EXAMPLES = int(os.environ.get("TROPIC_FUZZ_EXAMPLES", "25"))  # per operation; raise it for a deep run


def _spec() -> dict[str, Any]:
    app = create_app(Controller(build_datacenter(), SimDriver()), TokenStore(), AuditLog())
    return app.openapi()


SPEC = _spec()
# The event stream never ends by design: its contract is tested in test_api_server.
# Authentication through schemathesis itself, so that it knows which cases leave the token out on purpose.
CONFIG = SchemathesisConfig.from_dict({"auth": {"openapi": {"bearer": {"bearer": ADMIN}}}})
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG).exclude(path="/v1/events")


def test_the_fuzzed_document_is_the_served_one(server: Server) -> None:
    assert server.client(ADMIN).get("/openapi.json").json() == SPEC


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize="TROPIC_FUZZ_EXAMPLES" not in os.environ,
)
def test_no_server_errors_and_no_schema_violations(case: schemathesis.Case, server: Server) -> None:
    case.call_and_validate(base_url=server.url, timeout=10)
