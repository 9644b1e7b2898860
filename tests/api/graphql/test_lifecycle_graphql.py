"""The account lifecycle over GraphQL: email verification, password reset, sessions and
the audit log, with the same rules and the same error codes as REST.

Emails go over real SMTP to the ``smtp`` sink; tokens are taken from the emailed links.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import SmtpSink
from tests.factories import PASSWORD, account, bearer, login, register, superuser, unique_email
from tests.graphql_helpers import data_of, the_error
from tests.lifecycle_helpers import (
    RESET_PATH,
    VERIFY_PATH,
    container_of,
    link_in,
    next_email,
    no_more_email,
    session_id_of,
    timestamp,
    token_of,
)

Smtp = tuple[SmtpSink, int]
GRAPHQL = "/graphql"
NEW_PASSWORD = "a brand new passphrase"

REQUEST_VERIFICATION = "mutation { requestEmailVerification }"
CONFIRM_EMAIL = """
mutation Confirm($token: String!) { confirmEmail(token: $token) { id email emailVerified } }
"""
REQUEST_RESET = "mutation Reset($email: String!) { requestPasswordReset(email: $email) }"
RESET_PASSWORD = """
mutation ResetPassword($token: String!, $newPassword: String!) {
  resetPassword(token: $token, newPassword: $newPassword)
}
"""
SESSIONS = "{ sessions { id createdAt lastUsedAt expiresAt userAgent ip current } }"
REVOKE_SESSION = "mutation Revoke($id: ID!) { revokeSession(id: $id) }"
AUDIT_EVENTS = """
query Audit($first: Int, $after: String, $userId: ID, $type: String) {
  auditEvents(first: $first, after: $after, userId: $userId, type: $type) {
    items { id type actorId userId ip userAgent createdAt }
    nextCursor
  }
}
"""


async def execute(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    response = await client.post(
        GRAPHQL,
        json={"query": query, "variables": variables or {}},
        headers=bearer(token) if token else {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def code_of(body: dict[str, Any]) -> str:
    code: str = the_error(body)["extensions"]["code"]
    return code


async def verification_token(client: httpx.AsyncClient, sink: SmtpSink, access: str) -> str:
    before = len(sink.messages)
    assert data_of(await execute(client, REQUEST_VERIFICATION, token=access)) == {
        "requestEmailVerification": True
    }
    return token_of(link_in(await next_email(sink, before), VERIFY_PATH))


async def reset_token(client: httpx.AsyncClient, app: FastAPI, sink: SmtpSink, email: str) -> str:
    before = len(sink.messages)
    body = await execute(client, REQUEST_RESET, {"email": email})
    assert data_of(body) == {"requestPasswordReset": True}
    await container_of(app).jobs.drain()
    return token_of(link_in(await next_email(sink, before), RESET_PATH))


async def is_live(client: httpx.AsyncClient, access: str) -> bool:
    body = await execute(client, "{ me { id } }", token=access)
    if "errors" in body:
        assert code_of(body) == "UNAUTHENTICATED"
        return False
    return True


async def can_log_in(client: httpx.AsyncClient, email: str, password: str) -> bool:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


# --- email verification ----------------------------------------------------------------


async def test_request_email_verification_sends_the_link(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    sink, _ = smtp
    user = await account(mail_client)

    body = await execute(mail_client, REQUEST_VERIFICATION, token=user.access_token)

    assert data_of(body) == {"requestEmailVerification": True}
    message = await next_email(sink, 0)
    assert message["To"] == user.email
    token_of(link_in(message, VERIFY_PATH))


async def test_request_email_verification_needs_a_token(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    body = await execute(mail_client, REQUEST_VERIFICATION)

    assert code_of(body) == "UNAUTHENTICATED"
    await no_more_email(smtp[0], 0)


async def test_confirm_email_verifies_the_address(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    token = await verification_token(mail_client, smtp[0], user.access_token)

    body = await execute(mail_client, CONFIRM_EMAIL, {"token": token})

    assert data_of(body)["confirmEmail"] == {
        "id": user.id,
        "email": user.email,
        "emailVerified": True,
    }
    me = data_of(await execute(mail_client, "{ me { emailVerified } }", token=user.access_token))
    assert me == {"me": {"emailVerified": True}}


async def test_confirm_email_with_a_used_token_is_bad_user_input(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    token = await verification_token(mail_client, smtp[0], user.access_token)
    data_of(await execute(mail_client, CONFIRM_EMAIL, {"token": token}))

    body = await execute(mail_client, CONFIRM_EMAIL, {"token": token})

    assert code_of(body) == "BAD_USER_INPUT"
    assert body["data"] is None


async def test_confirm_email_with_a_garbage_token_is_bad_user_input(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    body = await execute(mail_client, CONFIRM_EMAIL, {"token": "not-a-real-token"})

    assert code_of(body) == "BAD_USER_INPUT"


# --- password reset --------------------------------------------------------------------


async def test_request_password_reset_is_true_and_emails_a_known_account(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)

    token = await reset_token(mail_client, mail_app, smtp[0], user.email)

    assert token
    assert smtp[0].messages[0]["To"] == user.email


async def test_request_password_reset_is_true_and_silent_for_an_unknown_email(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    body = await execute(mail_client, REQUEST_RESET, {"email": unique_email("nobody")})
    await container_of(mail_app).jobs.drain()
    await container_of(mail_app).outbox.drain()

    assert data_of(body) == {"requestPasswordReset": True}
    await no_more_email(smtp[0], 0)


async def test_reset_password_sets_it_and_ends_every_session(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    other = await login(mail_client, user.email)
    token = await reset_token(mail_client, mail_app, smtp[0], user.email)

    body = await execute(mail_client, RESET_PASSWORD, {"token": token, "newPassword": NEW_PASSWORD})

    assert data_of(body) == {"resetPassword": True}
    assert not await is_live(mail_client, user.access_token)
    assert not await is_live(mail_client, other["access_token"])
    assert await can_log_in(mail_client, user.email, NEW_PASSWORD)
    assert not await can_log_in(mail_client, user.email, PASSWORD)


async def test_reset_password_with_a_used_token_is_bad_user_input(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    token = await reset_token(mail_client, mail_app, smtp[0], user.email)
    variables = {"token": token, "newPassword": NEW_PASSWORD}
    data_of(await execute(mail_client, RESET_PASSWORD, variables))

    body = await execute(
        mail_client, RESET_PASSWORD, {"token": token, "newPassword": "yet another passphrase"}
    )

    assert code_of(body) == "BAD_USER_INPUT"
    assert await can_log_in(mail_client, user.email, NEW_PASSWORD)


async def test_reset_password_to_a_common_password_is_bad_user_input_on_new_password_field(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    token = await reset_token(mail_client, mail_app, smtp[0], user.email)

    body = await execute(mail_client, RESET_PASSWORD, {"token": token, "newPassword": "password1"})

    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    # Named as the GraphQL argument is (the service's field is new_password).
    assert error["extensions"]["field"] == "newPassword"
    assert error["message"].startswith("newPassword ")
    assert "common" in error["message"]
    assert await can_log_in(mail_client, user.email, PASSWORD)
    assert await is_live(mail_client, user.access_token)


# --- sessions --------------------------------------------------------------------------


async def test_sessions_lists_the_callers_sessions_with_the_current_one_marked(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    first = await login(client, user["email"])
    second = await login(client, user["email"])

    body = await execute(client, SESSIONS, token=second["access_token"])

    sessions = data_of(body)["sessions"]
    current = {item["id"]: item["current"] for item in sessions}
    assert current == {
        session_id_of(first["access_token"]): False,
        session_id_of(second["access_token"]): True,
    }
    for item in sessions:
        assert item["ip"] == "127.0.0.1"
        assert timestamp(item["createdAt"]) < timestamp(item["expiresAt"])
        timestamp(item["lastUsedAt"])


async def test_sessions_needs_a_token(client: httpx.AsyncClient) -> None:
    assert code_of(await execute(client, SESSIONS)) == "UNAUTHENTICATED"


async def test_revoke_session_ends_that_session(client: httpx.AsyncClient) -> None:
    user = await register(client)
    keep = await login(client, user["email"])
    end = await login(client, user["email"])

    body = await execute(
        client,
        REVOKE_SESSION,
        {"id": session_id_of(end["access_token"])},
        token=keep["access_token"],
    )

    assert data_of(body) == {"revokeSession": True}
    assert not await is_live(client, end["access_token"])
    assert await is_live(client, keep["access_token"])


async def test_revoke_session_of_someone_else_is_not_found(client: httpx.AsyncClient) -> None:
    caller = await account(client)
    victim = await account(client)

    body = await execute(
        client,
        REVOKE_SESSION,
        {"id": session_id_of(victim.access_token)},
        token=caller.access_token,
    )

    assert code_of(body) == "NOT_FOUND"
    assert await is_live(client, victim.access_token)


# --- audit events ----------------------------------------------------------------------


async def test_audit_events_is_forbidden_to_a_non_superuser(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    body = await execute(client, AUDIT_EVENTS, token=caller.access_token)

    assert code_of(body) == "FORBIDDEN"


async def test_audit_events_needs_a_token(client: httpx.AsyncClient) -> None:
    assert code_of(await execute(client, AUDIT_EVENTS)) == "UNAUTHENTICATED"


async def test_audit_events_pages_through_the_log_like_rest(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await account(client)
    await account(client)
    admin = await superuser(client, container_of(app))
    rest = await client.get("/api/v1/audit-events", params={"limit": 100}, headers=admin.headers)
    assert rest.status_code == 200
    expected = [event["id"] for event in rest.json()["items"]]
    assert len(expected) >= 5

    seen: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(len(expected)):
        page = data_of(
            await execute(
                client, AUDIT_EVENTS, {"first": 2, "after": after}, token=admin.access_token
            )
        )["auditEvents"]
        assert page["items"], "a page with a next cursor led to an empty page"
        seen.extend(page["items"])
        after = page["nextCursor"]
        if after is None:
            break
        assert len(page["items"]) == 2

    assert after is None
    assert [event["id"] for event in seen] == expected
    for event in seen:
        assert set(event) == {"id", "type", "actorId", "userId", "ip", "userAgent", "createdAt"}
        timestamp(event["createdAt"])


async def test_audit_events_filters_by_user_and_type(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await account(client)
    await account(client)
    admin = await superuser(client, container_of(app))

    body = await execute(
        client,
        AUDIT_EVENTS,
        {"userId": user.id, "type": "user.login_succeeded"},
        token=admin.access_token,
    )

    items = data_of(body)["auditEvents"]["items"]
    assert len(items) == 1
    assert items[0]["userId"] == user.id
    assert items[0]["actorId"] == user.id
    assert items[0]["type"] == "user.login_succeeded"


async def test_audit_events_with_an_unknown_type_is_bad_user_input(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await superuser(client, container_of(app))

    body = await execute(client, AUDIT_EVENTS, {"type": "user.hacked"}, token=admin.access_token)

    assert code_of(body) == "BAD_USER_INPUT"


# --- audit events of GraphQL actions ---------------------------------------------------

AGENT = "lifecycle-graphql-tests/1.0"


@dataclass
class World:
    client: httpx.AsyncClient
    app: FastAPI
    sink: SmtpSink


@dataclass
class Expected:
    user_id: str
    actor_id: str | None


async def as_agent(
    world: World, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    """Run an operation from a client that names itself (AGENT)."""
    headers = {"User-Agent": AGENT, **(bearer(token) if token else {})}
    response = await world.client.post(
        GRAPHQL, json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def gql_register(world: World) -> Expected:
    query = (
        'mutation R($e: String!, $p: String!) { register(email: $e, password: $p, name: "New") '
        "{ id } }"
    )
    body = await as_agent(world, query, {"e": unique_email(), "p": PASSWORD})
    user_id: str = data_of(body)["register"]["id"]
    return Expected(user_id=user_id, actor_id=user_id)


async def gql_login(world: World) -> Expected:
    user = await register(world.client)
    query = (
        "mutation L($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
    )
    data_of(await as_agent(world, query, {"e": user["email"], "p": PASSWORD}))
    return Expected(user_id=user["id"], actor_id=user["id"])


async def gql_login_failed(world: World) -> Expected:
    user = await register(world.client)
    query = (
        "mutation L($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
    )
    body = await as_agent(world, query, {"e": user["email"], "p": "not the password"})
    assert code_of(body) == "UNAUTHENTICATED"
    return Expected(user_id=user["id"], actor_id=None)


async def gql_update_user(world: World) -> Expected:
    user = await account(world.client)
    query = 'mutation U($id: ID!) { updateUser(id: $id, input: {name: "Renamed"}) { id } }'
    data_of(await as_agent(world, query, {"id": user.id}, user.access_token))
    return Expected(user_id=user.id, actor_id=user.id)


async def gql_delete_user(world: World) -> Expected:
    user = await account(world.client)
    query = "mutation D($id: ID!) { deleteUser(id: $id) }"
    data_of(await as_agent(world, query, {"id": user.id}, user.access_token))
    return Expected(user_id=user.id, actor_id=user.id)


async def gql_change_password(world: World) -> Expected:
    user = await account(world.client)
    query = (
        "mutation C($c: String!, $n: String!) "
        "{ changePassword(currentPassword: $c, newPassword: $n) }"
    )
    variables = {"c": PASSWORD, "n": NEW_PASSWORD}
    data_of(await as_agent(world, query, variables, user.access_token))
    return Expected(user_id=user.id, actor_id=user.id)


async def gql_reset_password(world: World) -> Expected:
    user = await register(world.client)
    token = await reset_token(world.client, world.app, world.sink, user["email"])
    data_of(await as_agent(world, RESET_PASSWORD, {"token": token, "newPassword": NEW_PASSWORD}))
    return Expected(user_id=user["id"], actor_id=user["id"])


async def gql_confirm_email(world: World) -> Expected:
    user = await account(world.client)
    token = await verification_token(world.client, world.sink, user.access_token)
    data_of(await as_agent(world, CONFIRM_EMAIL, {"token": token}))
    return Expected(user_id=user.id, actor_id=user.id)


async def gql_revoke_session(world: World) -> Expected:
    user = await account(world.client)
    other = await login(world.client, user.email)
    variables = {"id": session_id_of(other["access_token"])}
    data_of(await as_agent(world, REVOKE_SESSION, variables, user.access_token))
    return Expected(user_id=user.id, actor_id=user.id)


async def gql_logout(world: World) -> Expected:
    user = await account(world.client)
    query = "mutation L($r: String!) { logout(refreshToken: $r) }"
    data_of(await as_agent(world, query, {"r": user.refresh_token}))
    return Expected(user_id=user.id, actor_id=user.id)


async def gql_refresh_reused(world: World) -> Expected:
    user = await account(world.client)
    query = "mutation R($r: String!) { refresh(refreshToken: $r) { accessToken } }"
    data_of(await as_agent(world, query, {"r": user.refresh_token}))
    assert code_of(await as_agent(world, query, {"r": user.refresh_token})) == "UNAUTHENTICATED"
    return Expected(user_id=user.id, actor_id=None)


GRAPHQL_ACTIONS: dict[str, tuple[str, Callable[[World], Awaitable[Expected]]]] = {
    "register": ("user.registered", gql_register),
    "login": ("user.login_succeeded", gql_login),
    "login_failed": ("user.login_failed", gql_login_failed),
    "updateUser": ("user.updated", gql_update_user),
    "deleteUser": ("user.deleted", gql_delete_user),
    "changePassword": ("user.password_changed", gql_change_password),
    "resetPassword": ("user.password_reset", gql_reset_password),
    "confirmEmail": ("user.email_verified", gql_confirm_email),
    "revokeSession": ("session.revoked", gql_revoke_session),
    "logout": ("session.revoked", gql_logout),
    "refresh_reused": ("session.refresh_reused", gql_refresh_reused),
}


@pytest.mark.parametrize("action", list(GRAPHQL_ACTIONS))
async def test_graphql_action_records_its_audit_event_with_the_callers_ip_and_agent(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp, action: str
) -> None:
    admin = await superuser(mail_client, container_of(mail_app))
    event_type, act = GRAPHQL_ACTIONS[action]
    variables = {"type": event_type, "first": 100}
    before = data_of(await execute(mail_client, AUDIT_EVENTS, variables, token=admin.access_token))
    seen = {event["id"] for event in before["auditEvents"]["items"]}

    expected = await act(World(mail_client, mail_app, smtp[0]))

    after = data_of(await execute(mail_client, AUDIT_EVENTS, variables, token=admin.access_token))
    new = [event for event in after["auditEvents"]["items"] if event["id"] not in seen]
    assert len(new) == 1, new
    (event,) = new
    assert event["type"] == event_type
    assert event["userId"] == expected.user_id
    assert event["actorId"] == expected.actor_id
    assert (event["ip"], event["userAgent"]) == ("127.0.0.1", AGENT)
