"""Schemathesis against /graphql, in-process over ASGI, from the schema's introspection.

Every check is on (two of schemathesis' GraphQL heuristics replaced by the
contract's exact rule, see ``_checks``), positive and negative queries are generated
for every query and mutation field, in the examples, coverage and fuzzing phases,
then the stateful phase over the producer/consumer links schemathesis infers between
fields. Requests act as a superuser. A finding is a bug in the service, never
something to silence here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.graphql import nodes

from accounts.http.app import create_app
from tests.fuzz import _checks
from tests.fuzz._target import ReloggingBearerAuth, make_target, run_scenarios_from_the_same_start

MAX_EXAMPLES = 50

assert _checks.graphql_answers_within_contract  # registered on import
# Built-in scalars drawn from what the service takes as well as from anything at all:
# an ID is mostly a UUID (else every id argument stops at "not a valid id"), a String
# often an address or a password-sized text (else registration and login never get
# past validation).
schemathesis.graphql.scalar(
    "ID", st.one_of(st.uuids().map(str), st.text(max_size=40)).map(nodes.String)
)
schemathesis.graphql.scalar(
    "String",
    st.one_of(st.emails(), st.text(min_size=8, max_size=60), st.text()).map(nodes.String),
)
TARGET = make_target("accounts-fuzz-graphql-")
APP = create_app(TARGET.settings)
schema = schemathesis.graphql.from_asgi("/graphql", APP)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    database="none",
)
# Every check, with schemathesis' two GraphQL heuristics that cannot know the
# contract's error codes replaced by one that does (see _checks).
schema.config.checks.update(
    included_check_names=["all"],
    excluded_check_names=["not_a_server_error", "positive_data_acceptance"],
)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])


@schema.auth(refresh_interval=None)
class SuperuserAuth(ReloggingBearerAuth):
    """Acts as the fuzz superuser over GraphQL. A refused GraphQL request still answers
    200, so schemathesis' own re-login on 401 never fires here: ``works`` asks ``me``."""

    @staticmethod
    def works(token: str) -> bool:
        me = schema["Query"]["me"].Case(
            body="{ me { id } }", headers={"Authorization": f"Bearer {token}"}
        )
        return not me.call().json().get("errors")

    @staticmethod
    def login() -> str:
        email, password = json.dumps(TARGET.admin_email()), json.dumps(TARGET.admin_password)
        login = schema["Mutation"]["login"].Case(
            body=f"mutation {{ login(email: {email}, password: {password}) {{ accessToken }} }}"
        )
        response = login.call()
        assert response.status_code == 200, response.text
        token: str = response.json()["data"]["login"]["accessToken"]
        return token


@pytest.fixture(scope="module", autouse=True)
def _remove_target() -> Iterator[None]:
    yield
    TARGET.remove()


@schema.parametrize()
def test_every_field_answers_within_the_graphql_contract(case: Case) -> None:
    case.call_and_validate()


def test_sequences_of_operations_answer_within_the_graphql_contract() -> None:
    run_scenarios_from_the_same_start(schema, TARGET)
