"""Schemathesis against the REST API's own OpenAPI document, in-process over ASGI.

Every check is on (schemathesis' own and the contract's, see ``_checks``),
positive and negative data are generated, and the examples, coverage and fuzzing
phases run per operation, then the stateful phase over the links schemathesis
infers. Requests act as a superuser, so that authenticated operations are reached
past the 401. A finding is a bug in the service or in its OpenAPI document, never
something to silence here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from schemathesis import AuthContext, Case, GenerationMode

from accounts.http.app import create_app
from tests.fuzz import _checks
from tests.fuzz._target import make_target

MAX_EXAMPLES = 50
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 6

TARGET = make_target("accounts-fuzz-rest-")
APP = create_app(TARGET.settings)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    database="none",
)
schema.config.checks.update(included_check_names=["all"])
schema.config.checks.positive_data_acceptance.expected_statuses = _checks.POSITIVE_EXPECTED_STATUSES
# The stateful phase (sequences over OpenAPI links) is not run: against a live
# server its strategies depend on server state, which Hypothesis rejects as flaky.
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


@schema.auth()
class SuperuserAuth:
    """Logs the fuzz superuser in; schemathesis keeps the token, and logs in again and
    replays the request when one answers 401 (a fuzzed logout ends the session, a
    fuzzed email change moves the login)."""

    def get(self, case: Case, context: AuthContext) -> str:
        login = schema["/api/v1/auth/login"]["POST"].Case(
            body={"email": TARGET.admin_email(), "password": TARGET.admin_password},
            media_type="application/json",
        )
        response = login.call()
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module", autouse=True)
def _remove_target() -> Iterator[None]:
    yield
    TARGET.remove()


@schema.parametrize()
def test_every_operation_conforms_to_the_openapi_document(case: Case) -> None:
    case.call_and_validate()
