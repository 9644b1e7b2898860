"""The GraphQL API at /graphql: every query and mutation, its success and each error
code it can produce, and the limits that protect the server (depth, aliases, tokens,
page size), error masking, GraphiQL and the DataLoader.

Everything goes through the real app over HTTP (``client``) on a real database;
outcomes are checked through the API itself (or, for the DataLoader, by counting the
SQL statements the database driver really receives).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import get_introspection_query
from sqlalchemy import event, text

from accounts.bootstrap import Container
from accounts.http.app import create_app
from tests.conftest import make_settings
from tests.factories import (
    PASSWORD,
    Account,
    account,
    bearer,
    login,
    register,
    superuser,
    unique_email,
)
from tests.graphql_helpers import data_of, the_error

GRAPHQL = "/graphql"
INTROSPECTION_OPTIONS = (
    "specified_by_url",
    "directive_is_repeatable",
    "schema_description",
    "input_value_deprecation",
    "one_of",
)
USER_SELECTION = "id email name isActive isSuperuser emailVerified createdAt updatedAt"
PAIR_SELECTION = "accessToken tokenType expiresIn refreshToken"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
NEW_PASSWORD = "a brand new passphrase"

ME = f"query {{ me {{ {USER_SELECTION} }} }}"
USER = f"query User($id: ID!) {{ user(id: $id) {{ {USER_SELECTION} }} }}"
USERS = f"""
query Users($first: Int, $after: String, $query: String, $isActive: Boolean) {{
  users(first: $first, after: $after, query: $query, isActive: $isActive) {{
    edges {{ cursor node {{ {USER_SELECTION} }} }}
    pageInfo {{ hasNextPage endCursor }}
    totalCount
  }}
}}
"""
REGISTER = f"""
mutation Register($email: String!, $password: String!, $name: String!) {{
  register(email: $email, password: $password, name: $name) {{ {USER_SELECTION} }}
}}
"""
LOGIN = f"""
mutation Login($email: String!, $password: String!) {{
  login(email: $email, password: $password) {{ {PAIR_SELECTION} }}
}}
"""
REFRESH = f"""
mutation Refresh($refreshToken: String!) {{
  refresh(refreshToken: $refreshToken) {{ {PAIR_SELECTION} }}
}}
"""
LOGOUT = "mutation Logout($refreshToken: String!) { logout(refreshToken: $refreshToken) }"
UPDATE_USER = f"""
mutation UpdateUser($id: ID!, $input: UpdateUserInput!) {{
  updateUser(id: $id, input: $input) {{ {USER_SELECTION} }}
}}
"""
DELETE_USER = "mutation DeleteUser($id: ID!) { deleteUser(id: $id) }"
CHANGE_PASSWORD = """
mutation ChangePassword($currentPassword: String!, $newPassword: String!) {
  changePassword(currentPassword: $currentPassword, newPassword: $newPassword)
}
"""


# --- helpers ---------------------------------------------------------------------------


async def execute(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    """POST one operation; GraphQL answers 200 with ``data`` and/or ``errors``."""
    response = await client.post(
        GRAPHQL,
        json={"query": query, "variables": variables or {}},
        headers=bearer(token) if token else {},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def code_of(body: dict[str, Any]) -> str:
    code: str = the_error(body)["extensions"]["code"]
    return code


def timestamp(value: str) -> dt.datetime:
    assert RFC3339_UTC.match(value), value
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.utcoffset() == dt.timedelta(0)
    return parsed


def as_rest(user: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL user in REST's shape: snake_case keys, timestamps parsed."""
    snake = {re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): value for key, value in user.items()}
    snake["created_at"] = timestamp(snake["created_at"])
    snake["updated_at"] = timestamp(snake["updated_at"])
    return snake


async def rest_user(client: httpx.AsyncClient, user_id: str, token: str) -> dict[str, Any]:
    """The user as REST shows it (the oracle for GraphQL's user fields)."""
    response = await client.get(f"/api/v1/users/{user_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["created_at"] = dt.datetime.fromisoformat(body["created_at"])
    body["updated_at"] = dt.datetime.fromisoformat(body["updated_at"])
    return body


async def can_log_in(client: httpx.AsyncClient, email: str, password: str) -> bool:
    body = await execute(client, LOGIN, {"email": email, "password": password})
    return "errors" not in body


async def me_code(client: httpx.AsyncClient, token: str) -> str | None:
    """None when ``token`` still authenticates ``me``, else the error code."""
    body = await execute(client, "{ me { id } }", token=token)
    return code_of(body) if "errors" in body else None


def nested_selection(depth: int) -> str:
    """``me`` with a chain of ``depth`` fields below it: ``{ me { id { f { f } } } }``.

    Depth is counted as Strawberry's QueryDepthLimiter (after graphql-depth-limit)
    does: ``{ me { id } }`` is 1 deep.
    """
    chain = "id" + " { f" * (depth - 1) + " }" * (depth - 1)
    return f"me {{ {chain} }}"


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{index}: __typename" for index in range(count)) + " }"


# --- me --------------------------------------------------------------------------------


async def test_me_returns_the_caller(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    me = data_of(await execute(client, ME, token=caller.access_token))["me"]

    assert as_rest(me) == await rest_user(client, caller.id, caller.access_token)
    assert me["id"] == caller.id
    assert me["email"] == caller.email
    assert me["isActive"] is True
    assert me["isSuperuser"] is False
    assert me["emailVerified"] is False


async def test_me_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    body = await execute(client, ME)

    assert code_of(body) == "UNAUTHENTICATED"
    assert the_error(body)["path"] == ["me"]
    assert body["data"] is None


async def test_me_with_a_forged_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    caller = await account(client)
    header, payload, _signature = caller.access_token.split(".")
    forged = f"{header}.{payload}.{'A' * 342}"

    assert await me_code(client, forged) == "UNAUTHENTICATED"


async def test_me_with_a_revoked_session_is_unauthenticated(client: httpx.AsyncClient) -> None:
    caller = await account(client)
    data_of(await execute(client, LOGOUT, {"refreshToken": caller.refresh_token}))

    assert await me_code(client, caller.access_token) == "UNAUTHENTICATED"


# --- user(id) --------------------------------------------------------------------------


async def test_user_returns_the_caller_by_id(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    user = data_of(await execute(client, USER, {"id": caller.id}, token=caller.access_token))

    assert as_rest(user["user"]) == await rest_user(client, caller.id, caller.access_token)


async def test_user_of_someone_else_is_null_for_a_regular_user(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)
    other = await account(client)

    body = await execute(client, USER, {"id": other.id}, token=caller.access_token)

    # Null, not an error: the answer must not reveal that the id exists.
    assert data_of(body) == {"user": None}


async def test_user_that_does_not_exist_is_null(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)

    body = await execute(client, USER, {"id": str(uuid.uuid4())}, token=admin.access_token)

    assert data_of(body) == {"user": None}


async def test_superuser_reads_any_user(client: httpx.AsyncClient, container: Container) -> None:
    admin = await superuser(client, container)
    other = await account(client)

    user = data_of(await execute(client, USER, {"id": other.id}, token=admin.access_token))

    assert as_rest(user["user"]) == await rest_user(client, other.id, other.access_token)


@pytest.mark.parametrize(
    "spelling",
    [lambda id_: "not-a-uuid", lambda id_: f"urn:uuid:{id_}", lambda id_: id_.replace("-", "")],
    ids=["not-a-uuid", "urn", "no-hyphens"],
)
async def test_user_with_a_malformed_id_is_bad_user_input_naming_id(
    client: httpx.AsyncClient, spelling: Any
) -> None:
    caller = await account(client)

    body = await execute(client, USER, {"id": spelling(caller.id)}, token=caller.access_token)

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "id"
    assert body["data"] == {"user": None}


async def test_user_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    other = await account(client)

    body = await execute(client, USER, {"id": other.id})

    assert code_of(body) == "UNAUTHENTICATED"
    assert body["data"] == {"user": None}


@contextmanager
def statements_on(container: Container) -> Iterator[list[str]]:
    """Every SQL statement the read engine sends to the database while the block runs.

    A real observation of the driver (SQLAlchemy's ``before_cursor_execute`` event),
    not a mock: nothing is replaced, only watched.
    """
    seen: list[str] = []

    def record(
        _connection: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        seen.append(statement)

    engine = container.database.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_many_user_aliases_are_loaded_in_one_query(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    others = [await account(client) for _ in range(3)]
    missing = [str(uuid.uuid4()) for _ in range(22)]
    ids = [other.id for other in others] + missing
    one_alias = f'{{ u0: user(id: "{missing[0]}") {{ id email }} }}'
    many_aliases = (
        "{ "
        + " ".join(
            f'u{index}: user(id: "{user_id}") {{ id email }}' for index, user_id in enumerate(ids)
        )
        + " }"
    )
    data_of(await execute(client, one_alias, token=admin.access_token))  # warm the pools

    with statements_on(container) as for_one:
        data_of(await execute(client, one_alias, token=admin.access_token))
    with statements_on(container) as for_many:
        data = data_of(await execute(client, many_aliases, token=admin.access_token))

    assert [data[f"u{index}"] for index in range(len(others))] == [
        {"id": other.id, "email": other.email} for other in others
    ]
    assert all(data[f"u{index}"] is None for index in range(len(others), len(ids)))
    # 25 aliases cost exactly what one does: a single ``WHERE users.id IN (...)`` for
    # all of them (and, seen here on SQLite only, the caller's session check: on
    # PostgreSQL it bypasses SQLAlchemy's cursor events, see db/session_check.py).
    assert len(for_many) == len(for_one), for_many
    assert sum("users.id IN" in statement for statement in for_many) == 1, for_many


# --- users -----------------------------------------------------------------------------


async def test_users_lists_newest_first_with_the_exact_total_count(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    registered = [await register(client) for _ in range(3)]

    connection = data_of(await execute(client, USERS, {"first": 2}, token=admin.access_token))[
        "users"
    ]

    assert connection["totalCount"] == 4
    newest_first = [user["id"] for user in reversed(registered)]
    assert [edge["node"]["id"] for edge in connection["edges"]] == newest_first[:2]
    assert connection["pageInfo"] == {
        "hasNextPage": True,
        "endCursor": connection["edges"][-1]["cursor"],
    }
    node = connection["edges"][0]["node"]
    assert as_rest(node) == await rest_user(client, node["id"], admin.access_token)


async def test_users_pages_through_everyone_with_after(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    registered = [await register(client) for _ in range(3)]
    seen: list[str] = []
    after: str | None = None

    for _page in range(3):
        connection = data_of(
            await execute(client, USERS, {"first": 2, "after": after}, token=admin.access_token)
        )["users"]
        assert connection["totalCount"] == 4
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == [user["id"] for user in reversed(registered)] + [admin.id]
    assert connection["pageInfo"] == {
        "hasNextPage": False,
        "endCursor": connection["edges"][-1]["cursor"],
    }


async def test_users_filters_by_query_and_is_active_and_counts_the_matches(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    found = [await register(client, email=unique_email("needle")) for _ in range(2)]
    await register(client, email=unique_email("hay"))
    data_of(
        await execute(
            client,
            UPDATE_USER,
            {"id": found[0]["id"], "input": {"isActive": False}},
            token=admin.access_token,
        )
    )

    by_query = data_of(await execute(client, USERS, {"query": "NEEDLE"}, token=admin.access_token))[
        "users"
    ]
    inactive = data_of(
        await execute(
            client, USERS, {"query": "needle", "isActive": False}, token=admin.access_token
        )
    )["users"]

    assert by_query["totalCount"] == 2
    assert {edge["node"]["id"] for edge in by_query["edges"]} == {user["id"] for user in found}
    assert inactive["totalCount"] == 1
    assert [edge["node"]["id"] for edge in inactive["edges"]] == [found[0]["id"]]


async def test_users_accepts_first_100(client: httpx.AsyncClient, container: Container) -> None:
    admin = await superuser(client, container)

    connection = data_of(await execute(client, USERS, {"first": 100}, token=admin.access_token))[
        "users"
    ]

    assert connection["totalCount"] == 1
    assert connection["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("first", [101, 1000, 0, -1])
async def test_users_with_first_out_of_range_is_refused_naming_first(
    client: httpx.AsyncClient, container: Container, first: int
) -> None:
    admin = await superuser(client, container)

    body = await execute(client, USERS, {"first": first}, token=admin.access_token)

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "first"
    assert body["data"] is None


async def test_users_with_a_malformed_cursor_is_bad_user_input(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)

    body = await execute(client, USERS, {"after": "not a cursor"}, token=admin.access_token)

    assert code_of(body) == "BAD_USER_INPUT"


async def test_users_is_forbidden_to_a_regular_user(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    body = await execute(client, USERS, token=caller.access_token)

    assert code_of(body) == "FORBIDDEN"
    assert body["data"] is None


async def test_users_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    assert code_of(await execute(client, USERS)) == "UNAUTHENTICATED"


# --- register --------------------------------------------------------------------------


async def test_register_creates_a_user_who_can_log_in(client: httpx.AsyncClient) -> None:
    email = unique_email()

    user = data_of(
        await execute(
            client, REGISTER, {"email": email, "password": PASSWORD, "name": "  Ada Lovelace "}
        )
    )["register"]

    assert uuid.UUID(user["id"]).version == 7
    assert user["email"] == email
    assert user["name"] == "Ada Lovelace"
    assert (user["isActive"], user["isSuperuser"], user["emailVerified"]) == (True, False, False)
    assert timestamp(user["createdAt"]) == timestamp(user["updatedAt"])
    tokens = await login(client, email)
    assert as_rest(user) == await rest_user(client, user["id"], tokens["access_token"])


async def test_register_with_a_taken_email_in_another_case_is_email_taken(
    client: httpx.AsyncClient,
) -> None:
    existing = await register(client)

    body = await execute(
        client,
        REGISTER,
        {"email": existing["email"].upper(), "password": PASSWORD, "name": "Twin"},
    )

    assert code_of(body) == "EMAIL_TAKEN"
    assert body["data"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", f"{'a' * 250}@example.com"),
        ("password", "short"),
        ("password", "p" * 257),
        ("name", "   "),
        ("name", "n" * 101),
        ("name", "Null\x00Byte"),
    ],
)
async def test_register_with_an_invalid_value_is_bad_user_input_naming_the_field(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    variables = {"email": unique_email(), "password": PASSWORD, "name": "Ada", field: value}

    body = await execute(client, REGISTER, variables)

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
    assert body["data"] is None


async def test_register_when_registration_is_closed_is_forbidden(database_url: str) -> None:
    closed = create_app(make_settings(database_url, registration_open=False))
    async with (
        LifespanManager(closed),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=closed), base_url="http://testserver"
        ) as http,
    ):
        email = unique_email()
        body = await execute(http, REGISTER, {"email": email, "password": PASSWORD, "name": "A"})

        assert code_of(body) == "FORBIDDEN"
        assert not await can_log_in(http, email, PASSWORD)


# --- login -----------------------------------------------------------------------------


async def test_login_returns_a_working_token_pair(client: httpx.AsyncClient) -> None:
    user = await register(client)

    pair = data_of(
        await execute(client, LOGIN, {"email": user["email"].upper(), "password": PASSWORD})
    )["login"]

    assert pair["tokenType"] == "bearer"
    assert pair["expiresIn"] == 15 * 60
    assert len(pair["refreshToken"]) >= 43
    me = data_of(await execute(client, "{ me { id } }", token=pair["accessToken"]))["me"]
    assert me == {"id": user["id"]}


async def test_login_with_a_wrong_password_or_unknown_email_is_the_same_unauthenticated(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)

    wrong_password = await execute(
        client, LOGIN, {"email": user["email"], "password": "not the password"}
    )
    unknown_email = await execute(client, LOGIN, {"email": unique_email(), "password": PASSWORD})

    assert code_of(wrong_password) == "UNAUTHENTICATED"
    assert the_error(unknown_email) == the_error(wrong_password)


async def test_login_of_a_deactivated_user_is_forbidden(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    user = await register(client)
    data_of(
        await execute(
            client,
            UPDATE_USER,
            {"id": user["id"], "input": {"isActive": False}},
            token=admin.access_token,
        )
    )

    body = await execute(client, LOGIN, {"email": user["email"], "password": PASSWORD})

    assert code_of(body) == "FORBIDDEN"


async def test_login_with_an_oversized_password_is_bad_user_input(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)

    body = await execute(client, LOGIN, {"email": user["email"], "password": "p" * 257})

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "password"


# --- refresh ---------------------------------------------------------------------------


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    pair = data_of(await execute(client, REFRESH, {"refreshToken": caller.refresh_token}))[
        "refresh"
    ]

    assert pair["tokenType"] == "bearer"
    assert pair["refreshToken"] != caller.refresh_token
    assert await me_code(client, pair["accessToken"]) is None
    again = await execute(client, REFRESH, {"refreshToken": pair["refreshToken"]})
    assert "errors" not in again


async def test_refresh_with_an_unknown_token_is_unauthenticated(
    client: httpx.AsyncClient,
) -> None:
    body = await execute(client, REFRESH, {"refreshToken": "never-issued-" + "x" * 40})

    assert code_of(body) == "UNAUTHENTICATED"
    assert body["data"] is None


async def test_refresh_with_a_spent_token_is_unauthenticated_and_ends_the_session(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)
    pair = data_of(await execute(client, REFRESH, {"refreshToken": caller.refresh_token}))[
        "refresh"
    ]

    reused = await execute(client, REFRESH, {"refreshToken": caller.refresh_token})

    assert code_of(reused) == "UNAUTHENTICATED"
    newest = await execute(client, REFRESH, {"refreshToken": pair["refreshToken"]})
    assert code_of(newest) == "UNAUTHENTICATED"
    assert await me_code(client, pair["accessToken"]) == "UNAUTHENTICATED"


# --- logout ----------------------------------------------------------------------------


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    body = await execute(client, LOGOUT, {"refreshToken": caller.refresh_token})

    assert data_of(body) == {"logout": True}
    assert await me_code(client, caller.access_token) == "UNAUTHENTICATED"
    refreshed = await execute(client, REFRESH, {"refreshToken": caller.refresh_token})
    assert code_of(refreshed) == "UNAUTHENTICATED"


async def test_logout_with_an_unknown_token_is_unauthenticated(
    client: httpx.AsyncClient,
) -> None:
    body = await execute(client, LOGOUT, {"refreshToken": "never-issued-" + "x" * 40})

    assert code_of(body) == "UNAUTHENTICATED"
    assert body["data"] is None


async def test_logout_twice_is_unauthenticated(client: httpx.AsyncClient) -> None:
    caller = await account(client)
    data_of(await execute(client, LOGOUT, {"refreshToken": caller.refresh_token}))

    body = await execute(client, LOGOUT, {"refreshToken": caller.refresh_token})

    assert code_of(body) == "UNAUTHENTICATED"


# --- updateUser ------------------------------------------------------------------------


async def test_update_user_changes_the_callers_name_and_email(client: httpx.AsyncClient) -> None:
    caller = await account(client)
    before = await rest_user(client, caller.id, caller.access_token)
    new_email = unique_email("renamed")

    user = data_of(
        await execute(
            client,
            UPDATE_USER,
            {"id": caller.id, "input": {"name": " Grace Hopper ", "email": new_email}},
            token=caller.access_token,
        )
    )["updateUser"]

    assert user["name"] == "Grace Hopper"
    assert user["email"] == new_email
    assert user["emailVerified"] is False
    assert timestamp(user["createdAt"]) == before["created_at"]
    assert timestamp(user["updatedAt"]) > before["updated_at"]
    assert as_rest(user) == await rest_user(client, caller.id, caller.access_token)
    assert await can_log_in(client, new_email, PASSWORD)


async def test_update_user_leaves_omitted_fields_as_they_are(client: httpx.AsyncClient) -> None:
    caller = await account(client)
    before = await rest_user(client, caller.id, caller.access_token)

    user = data_of(
        await execute(
            client,
            UPDATE_USER,
            {"id": caller.id, "input": {"name": "Only The Name"}},
            token=caller.access_token,
        )
    )["updateUser"]

    after = as_rest(user)
    assert after["name"] == "Only The Name"
    assert {key: after[key] for key in after if key not in {"name", "updated_at"}} == {
        key: before[key] for key in before if key not in {"name", "updated_at"}
    }


async def test_superuser_deactivates_a_user_whose_tokens_stop_working(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    target = await account(client)

    user = data_of(
        await execute(
            client,
            UPDATE_USER,
            {"id": target.id, "input": {"isActive": False}},
            token=admin.access_token,
        )
    )["updateUser"]

    assert user["isActive"] is False
    assert await me_code(client, target.access_token) == "UNAUTHENTICATED"
    refreshed = await execute(client, REFRESH, {"refreshToken": target.refresh_token})
    assert code_of(refreshed) == "UNAUTHENTICATED"


async def test_superuser_promotes_a_user(client: httpx.AsyncClient, container: Container) -> None:
    admin = await superuser(client, container)
    target = await account(client)

    user = data_of(
        await execute(
            client,
            UPDATE_USER,
            {"id": target.id, "input": {"isSuperuser": True}},
            token=admin.access_token,
        )
    )["updateUser"]

    assert user["isSuperuser"] is True
    listed = await execute(client, USERS, token=target.access_token)
    assert data_of(listed)["users"]["totalCount"] == 2


@pytest.mark.parametrize("privilege", [{"isActive": False}, {"isSuperuser": True}])
async def test_update_user_privileges_by_a_regular_user_is_forbidden(
    client: httpx.AsyncClient, privilege: dict[str, bool]
) -> None:
    caller = await account(client)

    body = await execute(
        client, UPDATE_USER, {"id": caller.id, "input": privilege}, token=caller.access_token
    )

    assert code_of(body) == "FORBIDDEN"
    me = data_of(await execute(client, ME, token=caller.access_token))["me"]
    assert (me["isActive"], me["isSuperuser"]) == (True, False)


async def test_update_someone_else_by_a_regular_user_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)
    other = await account(client)

    body = await execute(
        client,
        UPDATE_USER,
        {"id": other.id, "input": {"name": "Hijacked"}},
        token=caller.access_token,
    )

    assert code_of(body) == "NOT_FOUND"
    assert (await rest_user(client, other.id, other.access_token))["name"] != "Hijacked"


async def test_update_a_missing_user_is_not_found(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)

    body = await execute(
        client,
        UPDATE_USER,
        {"id": str(uuid.uuid4()), "input": {"name": "Nobody"}},
        token=admin.access_token,
    )

    assert code_of(body) == "NOT_FOUND"


async def test_update_user_to_a_taken_email_is_email_taken(client: httpx.AsyncClient) -> None:
    caller = await account(client)
    other = await register(client)

    body = await execute(
        client,
        UPDATE_USER,
        {"id": caller.id, "input": {"email": other["email"].upper()}},
        token=caller.access_token,
    )

    assert code_of(body) == "EMAIL_TAKEN"
    assert (await rest_user(client, caller.id, caller.access_token))["email"] == caller.email


@pytest.mark.parametrize("demotion", [{"isSuperuser": False}, {"isActive": False}])
async def test_demoting_the_last_superuser_is_conflict(
    client: httpx.AsyncClient, container: Container, demotion: dict[str, bool]
) -> None:
    admin = await superuser(client, container)

    body = await execute(
        client, UPDATE_USER, {"id": admin.id, "input": demotion}, token=admin.access_token
    )

    assert code_of(body) == "CONFLICT"
    me = data_of(await execute(client, ME, token=admin.access_token))["me"]
    assert (me["isActive"], me["isSuperuser"]) == (True, True)


@pytest.mark.parametrize(
    ("field", "value"), [("name", ""), ("name", "Bell\x07"), ("email", "nope")]
)
async def test_update_user_with_an_invalid_value_is_bad_user_input_naming_the_field(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    caller = await account(client)

    body = await execute(
        client, UPDATE_USER, {"id": caller.id, "input": {field: value}}, token=caller.access_token
    )

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field


async def test_update_user_with_a_malformed_id_is_bad_user_input(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)

    body = await execute(
        client, UPDATE_USER, {"id": "42", "input": {"name": "X"}}, token=caller.access_token
    )

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "id"


async def test_update_user_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    other = await account(client)

    body = await execute(client, UPDATE_USER, {"id": other.id, "input": {"name": "X"}})

    assert code_of(body) == "UNAUTHENTICATED"


# --- deleteUser ------------------------------------------------------------------------


async def test_delete_user_erases_the_callers_account(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    body = await execute(client, DELETE_USER, {"id": caller.id}, token=caller.access_token)

    assert data_of(body) == {"deleteUser": True}
    assert await me_code(client, caller.access_token) == "UNAUTHENTICATED"
    assert not await can_log_in(client, caller.email, PASSWORD)
    # The email is free again.
    again = await execute(
        client, REGISTER, {"email": caller.email, "password": PASSWORD, "name": "Again"}
    )
    assert data_of(again)["register"]["id"] != caller.id


async def test_superuser_deletes_a_user(client: httpx.AsyncClient, container: Container) -> None:
    admin = await superuser(client, container)
    target = await account(client)

    body = await execute(client, DELETE_USER, {"id": target.id}, token=admin.access_token)

    assert data_of(body) == {"deleteUser": True}
    assert data_of(await execute(client, USER, {"id": target.id}, token=admin.access_token)) == {
        "user": None
    }


async def test_delete_someone_else_by_a_regular_user_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)
    other = await account(client)

    body = await execute(client, DELETE_USER, {"id": other.id}, token=caller.access_token)

    assert code_of(body) == "NOT_FOUND"
    assert await me_code(client, other.access_token) is None


async def test_delete_a_missing_user_is_not_found(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)

    body = await execute(client, DELETE_USER, {"id": str(uuid.uuid4())}, token=admin.access_token)

    assert code_of(body) == "NOT_FOUND"


async def test_deleting_the_last_superuser_is_conflict(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)

    body = await execute(client, DELETE_USER, {"id": admin.id}, token=admin.access_token)

    assert code_of(body) == "CONFLICT"
    assert await me_code(client, admin.access_token) is None


async def test_delete_user_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    other = await account(client)

    body = await execute(client, DELETE_USER, {"id": other.id})

    assert code_of(body) == "UNAUTHENTICATED"
    assert await me_code(client, other.access_token) is None


# --- changePassword --------------------------------------------------------------------


async def test_change_password_switches_it_and_ends_the_other_sessions(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)
    other_session = await login(client, caller.email)

    body = await execute(
        client,
        CHANGE_PASSWORD,
        {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        token=caller.access_token,
    )

    assert data_of(body) == {"changePassword": True}
    assert await me_code(client, caller.access_token) is None
    assert await me_code(client, other_session["access_token"]) == "UNAUTHENTICATED"
    assert await can_log_in(client, caller.email, NEW_PASSWORD)
    assert not await can_log_in(client, caller.email, PASSWORD)


async def test_change_password_with_a_wrong_current_password_is_bad_user_input(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)

    body = await execute(
        client,
        CHANGE_PASSWORD,
        {"currentPassword": "not my password", "newPassword": NEW_PASSWORD},
        token=caller.access_token,
    )

    assert code_of(body) == "BAD_USER_INPUT"
    assert the_error(body)["message"] == "Current password is incorrect"
    assert await can_log_in(client, caller.email, PASSWORD)


async def test_change_password_to_a_too_short_one_is_bad_user_input_naming_it(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)

    body = await execute(
        client,
        CHANGE_PASSWORD,
        {"currentPassword": PASSWORD, "newPassword": "short"},
        token=caller.access_token,
    )

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    # Named as the client sent it: the GraphQL argument, not the service's name for it.
    assert error["extensions"]["field"] == "newPassword"
    assert await can_log_in(client, caller.email, PASSWORD)


async def test_change_password_without_a_token_is_unauthenticated(
    client: httpx.AsyncClient,
) -> None:
    body = await execute(
        client, CHANGE_PASSWORD, {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    )

    assert code_of(body) == "UNAUTHENTICATED"


# --- limits ----------------------------------------------------------------------------
#
# Depth. No *valid* query on this schema can exceed 10 levels: the deepest selection
# is users > edges > node > field (3), fragment spreads add no depth, and what
# introspection fields (__schema, __type) select is held to a limit of its own (20,
# room for the standard introspection query's 14). The limit is a
# validation rule, so it sees the document before anything runs: a selection chained
# under a scalar (invalid in itself) still has a depth. The depth refusal is told apart
# from the "no subfields" error by its own message, with a 10-deep query of the same
# shape as the control that carries no depth error.


def depth_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [error for error in body.get("errors", []) if "depth" in error["message"]]


async def test_a_query_10_levels_deep_passes_the_depth_limit(client: httpx.AsyncClient) -> None:
    body = await execute(client, "{ " + nested_selection(10) + " }")

    assert depth_errors(body) == []
    assert body["errors"]  # the control is invalid for other reasons (see above)


async def test_a_query_deeper_than_10_levels_is_refused_before_execution(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    deep = (
        f'mutation {{ register(email: "{email}", password: "{PASSWORD}", name: "Deep") {{ '
        + nested_selection(11).removeprefix("me { ").removesuffix(" }")
        + " } }"
    )

    body = await execute(client, deep)

    [error] = depth_errors(body)
    assert error["message"] == "'anonymous' exceeds maximum operation depth of 10"
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "path" not in error
    assert body.get("data") is None
    # Refused before execution: the mutation never ran.
    assert (
        data_of(
            await execute(client, REGISTER, {"email": email, "password": PASSWORD, "name": "D"})
        )["register"]["email"]
        == email
    )


def introspection_of_depth(depth: int) -> str:
    """``__type`` with a chain of ``depth`` - 1 ``ofType`` below it (counted as above)."""
    return '{ __type(name: "Query") { ' + "ofType { " * (depth - 1) + "name" + " }" * depth + " }"


@pytest.mark.parametrize(
    "options",
    [{}, {"descriptions": False}, dict.fromkeys(INTROSPECTION_OPTIONS, True)],
    ids=["default", "no descriptions", "every option"],
)
async def test_the_standard_introspection_query_passes_the_depth_limits(
    client: httpx.AsyncClient, options: dict[str, bool]
) -> None:
    data = data_of(await execute(client, get_introspection_query(**options)))

    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_introspection_20_levels_deep_passes(client: httpx.AsyncClient) -> None:
    data = data_of(await execute(client, introspection_of_depth(20)))

    assert data == {"__type": {"ofType": None}}


@pytest.mark.parametrize("depth", [21, 100])
async def test_introspection_deeper_than_20_levels_is_refused(
    client: httpx.AsyncClient, depth: int
) -> None:
    body = await execute(client, introspection_of_depth(depth))

    error = the_error(body)
    assert error["message"] == "'anonymous' exceeds maximum introspection depth of 20"
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert body.get("data") is None


async def test_fragments_do_not_hide_the_depth_of_introspection(
    client: httpx.AsyncClient,
) -> None:
    # 1 + 10 x 2 levels, each fragment reaching two below the spread.
    fragments = " ".join(
        f"fragment F{n} on __Type {{ ofType {{ ofType {{ ...F{n + 1} }} }} }}" for n in range(10)
    )
    query = f"{{ __schema {{ types {{ ...F0 }} }} }} {fragments} fragment F10 on __Type {{ name }}"

    body = await execute(client, query)

    assert the_error(body)["message"] == "'anonymous' exceeds maximum introspection depth of 20"


async def test_a_spread_of_an_unknown_fragment_is_an_ordinary_validation_error(
    client: httpx.AsyncClient,
) -> None:
    body = await execute(client, "{ ...Missing }")

    error = the_error(body)
    assert error["message"] == "Unknown fragment 'Missing'."
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


async def test_30_aliases_are_allowed(client: httpx.AsyncClient) -> None:
    data = data_of(await execute(client, aliases(30)))

    assert len(data) == 30


async def test_more_than_30_aliases_are_refused(client: httpx.AsyncClient) -> None:
    body = await execute(client, aliases(31))

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "aliases" in error["message"]
    assert body.get("data") is None


async def test_a_refused_document_is_refused_every_time_it_is_sent(
    client: httpx.AsyncClient,
) -> None:
    # Validation results are cached per document (ValidationCache): the second and
    # later answers come from the cache and must be the first one's equal.
    deep = "{ " + nested_selection(11) + " }"
    wide = aliases(31)

    answers = [await execute(client, query) for query in (deep, wide, deep, wide, deep)]

    assert [depth_errors(body) != [] for body in answers] == [True, False, True, False, True]
    for first, again in (
        (answers[0], answers[2]),
        (answers[0], answers[4]),
        (answers[1], answers[3]),
    ):
        assert again == first
        assert again["errors"]
        assert all(e["extensions"] == {"code": "BAD_USER_INPUT"} for e in again["errors"])


def query_of_tokens(count: int) -> str:
    """A valid query of exactly ``count`` tokens (``count`` >= 1994).

    ``{`` and ``}`` are 2 tokens, ``__typename @include(if: true)`` is 8, a bare
    ``__typename`` 1. (Not 2000 bare ``__typename``: graphql-core's overlap check
    gives up on a thousand identical siblings before the token limit is reached.)
    """
    guarded, bare = divmod(count - 2 - 6, 8)
    return "{ " + "__typename @include(if: true) " * guarded + "__typename " * (bare + 6) + "}"


async def test_a_query_of_2000_tokens_is_allowed(client: httpx.AsyncClient) -> None:
    assert data_of(await execute(client, query_of_tokens(2000))) == {"__typename": "Query"}


async def test_a_query_over_2000_tokens_is_refused(client: httpx.AsyncClient) -> None:
    body = await execute(client, query_of_tokens(2001))

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "more than 2000 tokens" in error["message"]
    assert body.get("data") is None


# --- errors ----------------------------------------------------------------------------


async def test_a_syntax_error_is_bad_user_input(client: httpx.AsyncClient) -> None:
    body = await execute(client, "{ me { id ")

    assert code_of(body) == "BAD_USER_INPUT"
    assert the_error(body)["message"].startswith("Syntax Error")


async def test_a_missing_required_variable_is_bad_user_input(client: httpx.AsyncClient) -> None:
    body = await execute(client, USER, {})

    assert code_of(body) == "BAD_USER_INPUT"
    assert "$id" in the_error(body)["message"]


@asynccontextmanager
async def tripwire_on_user_names(container: Container, name: str) -> AsyncIterator[None]:
    """Make the database itself reject inserting a user called ``name``, with an error
    the service does not expect (a constraint it knows nothing about)."""
    engine = container.database.write_engine
    if container.database.is_sqlite:
        install = [
            "CREATE TRIGGER gql_test_tripwire BEFORE INSERT ON users "
            f"WHEN NEW.name = '{name}' BEGIN SELECT RAISE(ABORT, 'gql_test_tripwire'); END"
        ]
        remove = ["DROP TRIGGER gql_test_tripwire"]
    else:
        install = [
            f"ALTER TABLE users ADD CONSTRAINT gql_test_tripwire CHECK (name <> '{name}') NOT VALID"
        ]
        remove = ["ALTER TABLE users DROP CONSTRAINT gql_test_tripwire"]
    async with engine.begin() as connection:
        for statement in install:
            await connection.execute(text(statement))
    try:
        yield
    finally:
        async with engine.begin() as connection:
            for statement in remove:
                await connection.execute(text(statement))


async def test_an_unexpected_error_is_masked(
    client: httpx.AsyncClient, container: Container
) -> None:
    async with tripwire_on_user_names(container, "Tripwire"):
        response = await client.post(
            GRAPHQL,
            json={
                "query": REGISTER,
                "variables": {"email": unique_email(), "password": PASSWORD, "name": "Tripwire"},
            },
        )

    body = response.json()
    error = the_error(body)
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["path"] == ["register"]
    for leak in ("tripwire", "INSERT", "users", "Traceback", "sqlalchemy", "sqlite", "asyncpg"):
        assert leak.lower() not in response.text.lower().replace('"register"', ""), leak


async def test_graphiql_is_served_to_a_browser(client: httpx.AsyncClient) -> None:
    response = await client.get(GRAPHQL, headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_a_query_over_get_is_refused_as_a_problem(client: httpx.AsyncClient) -> None:
    """Queries go by POST only; the refusal is a problem like every other error."""
    response = await client.get(
        GRAPHQL, params={"query": "{ __typename }"}, headers={"Accept": "application/json"}
    )

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == response.status_code


async def test_the_bearer_scheme_is_read_case_insensitively(client: httpx.AsyncClient) -> None:
    """The bearer header is read as REST reads it (RFC 7235: the scheme is case-insensitive)."""
    caller: Account = await account(client)

    response = await client.post(
        GRAPHQL,
        json={"query": "{ me { id } }"},
        headers={"Authorization": f"bearer {caller.access_token}"},
    )

    assert response.json() == {"data": {"me": {"id": caller.id}}}
