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
from schemathesis import Case, GenerationMode

from accounts.http.app import create_app
from tests.fuzz import _checks
from tests.fuzz._target import ReloggingBearerAuth, make_target, run_scenarios_from_the_same_start

MAX_EXAMPLES = 50

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
schema.config.checks.negative_data_rejection.expected_statuses = _checks.NEGATIVE_EXPECTED_STATUSES
schema.config.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])


@schema.auth(refresh_interval=None)
class SuperuserAuth(ReloggingBearerAuth):
    """Acts as the fuzz superuser over REST: a token is good while ``GET /users/me``
    accepts it."""

    @staticmethod
    def works(token: str) -> bool:
        me = schema["/api/v1/users/me"]["GET"].Case(headers={"Authorization": f"Bearer {token}"})
        return me.call().status_code == 200

    @staticmethod
    def login() -> str:
        login = schema["/api/v1/auth/login"]["POST"].Case(
            body={"email": TARGET.admin_email(), "password": TARGET.admin_password},
            media_type="application/json",
        )
        response = login.call()
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture(scope="module", autouse=True)
def _remove_target() -> Iterator[None]:
    yield
    TARGET.remove()


@schema.parametrize()
def test_every_operation_conforms_to_the_openapi_document(case: Case) -> None:
    case.call_and_validate()


def test_sequences_of_operations_conform_to_the_openapi_document() -> None:
    run_scenarios_from_the_same_start(schema, TARGET)
