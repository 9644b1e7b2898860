"""BAD_USER_INPUT names the GraphQL argument the client sent, never the service's name.

Services name an input as REST does (``q``, ``cursor``, ``limit``, ``refresh_token``,
``new_password``); a GraphQL client sent ``query``, ``after``, ``first``,
``refreshToken``, ``newPassword``. Each row below breaks one argument's rule through
the real API and checks that ``extensions.field``, every ``extensions.errors[].field``
and the message's first word name that argument, and that it is an argument (or an
input field) of the field that was asked. A last test checks the table against the
schema, so that an argument with a rule of its own cannot be left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from accounts.bootstrap import Container
from tests.factories import PASSWORD, Account, account, superuser, unique_email
from tests.graphql_helpers import the_error

GRAPHQL = "/graphql"
LONG_PASSWORD = "p" * 257  # one over the longest password taken


@dataclass(frozen=True)
class Row:
    field: str  # the root field asked
    argument: str  # the argument (or input field) whose rule is broken
    document: str
    variables: Callable[[Account], dict[str, Any]]
    who: str = "none"  # "none", "user" or "admin"
    input_fields: tuple[str, ...] = field(default=())


def args(**values: Any) -> Callable[[Account], dict[str, Any]]:
    return lambda _caller: values


def update_input_row(input_field: str, value: str) -> Row:
    """A row breaking one field of updateUser's input, as the caller updating themself."""
    return Row(
        "updateUser",
        input_field,
        "mutation($id: ID!, $v: String) {"
        f" updateUser(id: $id, input: {{{input_field}: $v}}) {{ id }} }}",
        lambda caller: {"id": caller.id, "v": value},
        who="user",
        input_fields=("name", "email", "isActive", "isSuperuser"),
    )


def bad(field: str, argument: str, document: str, value: Any, who: str = "none") -> Row:
    """A row whose document takes the bad value as its one variable, ``$v``."""
    return Row(field, argument, document, args(v=value), who=who)


def bad_id(field: str, document: str) -> Row:
    """A malformed ``id`` argument, which every field refuses the same way."""
    return bad(field, "id", document, "42", who="user")


def bad_list_argument(field: str, argument: str, graphql_type: str, value: Any) -> Row:
    """A bad argument of a superuser's list: ``users`` or ``auditEvents``."""
    selection = {"users": "totalCount", "auditEvents": "nextCursor"}[field]
    document = f"query($v: {graphql_type}) {{ {field}({argument}: $v) {{ {selection} }} }}"
    return bad(field, argument, document, value, who="admin")


ROWS = [
    bad(
        "register",
        "email",
        'mutation($v: String!) { register(email: $v, password: "a long passphrase",'
        ' name: "Ada") { id } }',
        "not an address",
    ),
    Row(
        "register",
        "name",
        'mutation($v: String!, $e: String!) { register(email: $e, password: "a long passphrase",'
        " name: $v) { id } }",
        lambda _: {"v": "", "e": unique_email()},
    ),
    Row(
        "register",
        "password",
        'mutation($v: String!, $e: String!) { register(email: $e, password: $v, name: "Ada")'
        " { id } }",
        lambda _: {"v": "short", "e": unique_email()},
    ),
    bad(
        "login",
        "email",
        'mutation($v: String!) { login(email: $v, password: "x") { accessToken } }',
        "e" * 321,
    ),
    bad(
        "login",
        "password",
        'mutation($v: String!) { login(email: "a@example.com", password: $v) { accessToken } }',
        LONG_PASSWORD,
    ),
    bad(
        "refresh",
        "refreshToken",
        "mutation($v: String!) { refresh(refreshToken: $v) { accessToken } }",
        "",
    ),
    # Empty: bad input (one too long is not ours, UNAUTHENTICATED).
    bad("logout", "refreshToken", "mutation($v: String!) { logout(refreshToken: $v) }", ""),
    update_input_row("name", ""),
    update_input_row("email", "not an address"),
    bad_id("updateUser", 'mutation($v: ID!) { updateUser(id: $v, input: {name: "X"}) { id } }'),
    bad_id("deleteUser", "mutation($v: ID!) { deleteUser(id: $v) }"),
    bad(
        "changePassword",
        "currentPassword",
        'mutation($v: String!) { changePassword(currentPassword: $v, newPassword: "a long one!") }',
        LONG_PASSWORD,
        who="user",
    ),
    Row(
        "changePassword",
        "newPassword",
        "mutation($v: String!, $c: String!) {"
        " changePassword(currentPassword: $c, newPassword: $v) }",
        lambda caller: {"v": "short", "c": caller.password},
        who="user",
    ),
    bad(
        "requestPasswordReset",
        "email",
        "mutation($v: String!) { requestPasswordReset(email: $v) }",
        "",
    ),
    bad_id("revokeSession", "mutation($v: ID!) { revokeSession(id: $v) }"),
    bad_id("user", "query($v: ID!) { user(id: $v) { id } }"),
    bad_list_argument("users", "query", "String", "q" * 255),
    bad_list_argument("users", "after", "String", "not a cursor"),
    bad_list_argument("users", "first", "Int", 101),
    bad_list_argument("auditEvents", "first", "Int", 101),
    bad_list_argument("auditEvents", "after", "String", "not a cursor"),
    bad_list_argument("auditEvents", "type", "String", "no.such_event"),
    bad_list_argument("auditEvents", "userId", "ID", "42"),
]

# Arguments with no rule of their own to break here, and why.
NO_RULE_HERE = {
    ("users", "isActive"): "a Boolean: GraphQL's own coercion refuses anything else",
    ("updateUser", "input"): "its fields are rows (name, email); the rest are Booleans",
    ("confirmEmail", "token"): "a bad token is the token's error (no field), not a rule",
    ("resetPassword", "token"): "as confirmEmail's",
    ("resetPassword", "newPassword"): (
        "needs an emailed token: test_lifecycle_graphql.py::"
        "test_reset_password_to_a_common_password_is_bad_user_input_on_new_password_field"
    ),
}


async def arguments_by_field(client: httpx.AsyncClient) -> dict[str, set[str]]:
    """Every root field's arguments, as the schema describes itself."""
    response = await client.post(
        GRAPHQL,
        json={
            "query": '{ query: __type(name: "Query") { fields { name args { name } } }'
            ' mutation: __type(name: "Mutation") { fields { name args { name } } } }'
        },
    )
    data = response.json()["data"]
    return {
        root_field["name"]: {argument["name"] for argument in root_field["args"]}
        for root in ("query", "mutation")
        for root_field in data[root]["fields"]
    }


@pytest.fixture
async def callers(client: httpx.AsyncClient, container: Container) -> dict[str, Account]:
    user = await account(client)
    admin = await superuser(client, container)
    anonymous = Account(id="", email="", password=PASSWORD, access_token="", refresh_token="")
    return {"none": anonymous, "user": user, "admin": admin}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.field}({row.argument})")
async def test_bad_user_input_names_the_graphql_argument(
    client: httpx.AsyncClient, callers: dict[str, Account], row: Row
) -> None:
    caller = callers[row.who]

    response = await client.post(
        GRAPHQL,
        json={"query": row.document, "variables": row.variables(caller)},
        headers=caller.headers if caller.access_token else {},
    )

    error = the_error(response.json())
    extensions = error["extensions"]
    assert extensions["code"] == "BAD_USER_INPUT", error
    assert extensions["field"] == row.argument, error
    assert [item["field"] for item in extensions.get("errors", [])] in ([], [row.argument])
    assert error["message"].split()[0].rstrip(":") == row.argument, error
    names = (await arguments_by_field(client))[row.field] | set(row.input_fields)
    assert row.argument in names


async def test_every_argument_with_a_rule_of_its_own_has_a_row(client: httpx.AsyncClient) -> None:
    covered = {(row.field, row.argument) for row in ROWS} | set(NO_RULE_HERE)
    # A new argument (or field) shows up here until it has a row, or a reason above.
    schema = {
        (root_field, argument)
        for root_field, arguments in (await arguments_by_field(client)).items()
        for argument in arguments
    }

    assert schema - covered == set()
