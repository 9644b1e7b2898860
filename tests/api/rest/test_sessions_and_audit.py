"""The caller's sessions (list, revoke) and the audit log, over REST.

Audit events are read back through ``GET /api/v1/audit-events`` as a superuser: each
event type is produced by the action that should produce it (and carries who, whom,
from where), the filters and the cursor work, no secret ever shows, and an event
exists exactly when its change was committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import SmtpSink
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
from tests.lifecycle_helpers import (
    AUDIT,
    LOGIN,
    ME,
    PROBLEM_JSON,
    REFRESH,
    RESET_CONFIRM,
    SESSIONS,
    VERIFY_CONFIRM,
    audit_events,
    container_of,
    failing_inserts,
    reset_mail,
    session_id_of,
    timestamp,
    verification_mail,
)

Smtp = tuple[SmtpSink, int]
AGENT = "sessions-and-audit-tests/1.0"
NEW_PASSWORD = "a brand new passphrase"
SESSION_FIELDS = {"id", "created_at", "last_used_at", "expires_at", "user_agent", "ip", "current"}
EVENT_TYPES = {
    "user.registered",
    "user.login_succeeded",
    "user.login_failed",
    "user.updated",
    "user.deleted",
    "user.password_changed",
    "user.password_reset",
    "user.email_verified",
    "session.revoked",
    "session.refresh_reused",
}


async def login_as(client: httpx.AsyncClient, email: str, agent: str) -> dict[str, Any]:
    response = await client.post(
        LOGIN, json={"email": email, "password": PASSWORD}, headers={"User-Agent": agent}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sessions_of(client: httpx.AsyncClient, access_token: str) -> list[dict[str, Any]]:
    response = await client.get(SESSIONS, headers=bearer(access_token))
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def is_live(client: httpx.AsyncClient, access_token: str) -> bool:
    status = (await client.get(ME, headers=bearer(access_token))).status_code
    assert status in (200, 401)
    return status == 200


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == status


# --- sessions --------------------------------------------------------------------------


async def test_sessions_lists_exactly_the_live_sessions_with_the_current_one_marked(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    first = await login_as(client, user["email"], "agent-one")
    second = await login_as(client, user["email"], "agent-two")
    ended = await login_as(client, user["email"], "agent-three")
    logout = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": ended["refresh_token"]}
    )
    assert logout.status_code == 204, logout.text

    listed = await sessions_of(client, second["access_token"])

    assert all(set(item) == SESSION_FIELDS for item in listed)
    by_id = {item["id"]: item for item in listed}
    assert set(by_id) == {
        session_id_of(first["access_token"]),
        session_id_of(second["access_token"]),
    }
    assert [item["id"] for item in listed if item["current"]] == [
        session_id_of(second["access_token"])
    ]
    assert by_id[session_id_of(first["access_token"])]["user_agent"] == "agent-one"
    assert by_id[session_id_of(second["access_token"])]["user_agent"] == "agent-two"
    for item in listed:
        assert item["ip"] == "127.0.0.1"
        created = timestamp(item["created_at"])
        assert created <= timestamp(item["last_used_at"]) < timestamp(item["expires_at"])


async def test_sessions_marks_the_callers_own_session_whichever_it_is(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    first = await login_as(client, user["email"], AGENT)
    second = await login_as(client, user["email"], AGENT)

    seen_by_first = await sessions_of(client, first["access_token"])

    current = {item["id"]: item["current"] for item in seen_by_first}
    assert current == {
        session_id_of(first["access_token"]): True,
        session_id_of(second["access_token"]): False,
    }


async def test_sessions_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(SESSIONS)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_revoking_a_session_ends_it_and_only_it(client: httpx.AsyncClient) -> None:
    user = await register(client)
    keep = await login_as(client, user["email"], AGENT)
    end = await login_as(client, user["email"], AGENT)

    response = await client.delete(
        f"{SESSIONS}/{session_id_of(end['access_token'])}", headers=bearer(keep["access_token"])
    )

    assert response.status_code == 204, response.text
    assert not await is_live(client, end["access_token"])
    refreshed = await client.post(REFRESH, json={"refresh_token": end["refresh_token"]})
    assert refreshed.status_code == 401, refreshed.text
    assert await is_live(client, keep["access_token"])
    listed = await sessions_of(client, keep["access_token"])
    assert [item["id"] for item in listed] == [session_id_of(keep["access_token"])]
    kept_refresh = await client.post(REFRESH, json={"refresh_token": keep["refresh_token"]})
    assert kept_refresh.status_code == 200, kept_refresh.text


async def test_revoking_the_current_session_ends_it(client: httpx.AsyncClient) -> None:
    user = await account(client)

    response = await client.delete(
        f"{SESSIONS}/{session_id_of(user.access_token)}", headers=user.headers
    )

    assert response.status_code == 204, response.text
    assert not await is_live(client, user.access_token)


async def test_revoking_someone_elses_session_is_404_and_leaves_it_alive(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)
    victim = await account(client)

    response = await client.delete(
        f"{SESSIONS}/{session_id_of(victim.access_token)}", headers=caller.headers
    )

    assert_problem(response, 404)
    assert await is_live(client, victim.access_token)
    refreshed = await client.post(REFRESH, json={"refresh_token": victim.refresh_token})
    assert refreshed.status_code == 200, refreshed.text


async def test_revoking_an_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    response = await client.delete(f"{SESSIONS}/{uuid.uuid4()}", headers=caller.headers)

    assert_problem(response, 404)
    assert await is_live(client, caller.access_token)


async def test_revoking_an_already_revoked_session_is_404(client: httpx.AsyncClient) -> None:
    user = await register(client)
    keep = await login_as(client, user["email"], AGENT)
    end = await login_as(client, user["email"], AGENT)
    path = f"{SESSIONS}/{session_id_of(end['access_token'])}"
    assert (await client.delete(path, headers=bearer(keep["access_token"]))).status_code == 204

    again = await client.delete(path, headers=bearer(keep["access_token"]))

    assert_problem(again, 404)


async def test_revoking_a_malformed_session_id_is_422(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    response = await client.delete(f"{SESSIONS}/not-a-uuid", headers=caller.headers)

    assert_problem(response, 422)
    assert response.json()["errors"]


# --- audit log: access -----------------------------------------------------------------


async def test_audit_log_is_forbidden_to_a_non_superuser(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    response = await client.get(AUDIT, headers=caller.headers)

    assert_problem(response, 403)


async def test_audit_log_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(AUDIT)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# --- audit log: each event type from its action ----------------------------------------


@dataclass
class World:
    client: httpx.AsyncClient
    app: FastAPI
    sink: SmtpSink
    admin: Account


@dataclass
class Expected:
    user_id: str | None
    actor_id: str | None


def agent() -> dict[str, str]:
    return {"User-Agent": AGENT}


async def registered(world: World) -> Expected:
    response = await world.client.post(
        "/api/v1/users",
        json={"email": unique_email(), "password": PASSWORD, "name": "New"},
        headers=agent(),
    )
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    return Expected(user_id=user_id, actor_id=user_id)


async def login_succeeded(world: World) -> Expected:
    user = await register(world.client)
    await login_as(world.client, user["email"], AGENT)
    return Expected(user_id=user["id"], actor_id=user["id"])


async def login_failed_unknown_email(world: World) -> Expected:
    response = await world.client.post(
        LOGIN, json={"email": unique_email("ghost"), "password": PASSWORD}, headers=agent()
    )
    assert response.status_code == 401, response.text
    return Expected(user_id=None, actor_id=None)


async def login_failed_wrong_password(world: World) -> Expected:
    user = await register(world.client)
    response = await world.client.post(
        LOGIN, json={"email": user["email"], "password": "not the password"}, headers=agent()
    )
    assert response.status_code == 401, response.text
    return Expected(user_id=user["id"], actor_id=None)


async def updated(world: World) -> Expected:
    user = await register(world.client)
    response = await world.client.patch(
        f"/api/v1/users/{user['id']}",
        json={"name": "Renamed"},
        headers={**world.admin.headers, **agent()},
    )
    assert response.status_code == 200, response.text
    return Expected(user_id=user["id"], actor_id=world.admin.id)


async def deleted(world: World) -> Expected:
    user = await account(world.client)
    response = await world.client.delete(ME, headers={**user.headers, **agent()})
    assert response.status_code == 204, response.text
    return Expected(user_id=user.id, actor_id=user.id)


async def password_changed(world: World) -> Expected:
    user = await account(world.client)
    response = await world.client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={**user.headers, **agent()},
    )
    assert response.status_code == 204, response.text
    return Expected(user_id=user.id, actor_id=user.id)


async def password_reset(world: World) -> Expected:
    user = await register(world.client)
    mail = await reset_mail(world.client, world.app, world.sink, user["email"])
    response = await world.client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": NEW_PASSWORD}, headers=agent()
    )
    assert response.status_code == 204, response.text
    return Expected(user_id=user["id"], actor_id=user["id"])


async def email_verified(world: World) -> Expected:
    user = await account(world.client)
    mail = await verification_mail(world.client, world.sink, user.access_token)
    response = await world.client.post(VERIFY_CONFIRM, json={"token": mail.token}, headers=agent())
    assert response.status_code == 200, response.text
    return Expected(user_id=user.id, actor_id=user.id)


async def session_revoked(world: World) -> Expected:
    user = await account(world.client)
    other = await login(world.client, user.email)
    response = await world.client.delete(
        f"{SESSIONS}/{session_id_of(other['access_token'])}",
        headers={**user.headers, **agent()},
    )
    assert response.status_code == 204, response.text
    return Expected(user_id=user.id, actor_id=user.id)


async def refresh_reused(world: World) -> Expected:
    user = await account(world.client)
    first = await world.client.post(
        REFRESH, json={"refresh_token": user.refresh_token}, headers=agent()
    )
    assert first.status_code == 200, first.text
    reused = await world.client.post(
        REFRESH, json={"refresh_token": user.refresh_token}, headers=agent()
    )
    assert reused.status_code == 401, reused.text
    return Expected(user_id=user.id, actor_id=None)


ACTIONS: dict[str, tuple[str, Callable[[World], Awaitable[Expected]]]] = {
    "registered": ("user.registered", registered),
    "login_succeeded": ("user.login_succeeded", login_succeeded),
    "login_failed_unknown_email": ("user.login_failed", login_failed_unknown_email),
    "login_failed_wrong_password": ("user.login_failed", login_failed_wrong_password),
    "updated": ("user.updated", updated),
    "deleted": ("user.deleted", deleted),
    "password_changed": ("user.password_changed", password_changed),
    "password_reset": ("user.password_reset", password_reset),
    "email_verified": ("user.email_verified", email_verified),
    "session_revoked": ("session.revoked", session_revoked),
    "refresh_reused": ("session.refresh_reused", refresh_reused),
}


def test_every_contract_event_type_has_an_action_here() -> None:
    assert {event_type for event_type, _ in ACTIONS.values()} == EVENT_TYPES


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_action_records_its_audit_event(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp, action: str
) -> None:
    admin = await superuser(mail_client, container_of(mail_app))
    world = World(mail_client, mail_app, smtp[0], admin)
    event_type, act = ACTIONS[action]
    before = {event["id"] for event in await audit_events(mail_client, admin.access_token)}

    expected = await act(world)

    new = [
        event
        for event in await audit_events(mail_client, admin.access_token, type=event_type)
        if event["id"] not in before and event["user_agent"] == AGENT
    ]
    assert len(new) == 1, new
    (event,) = new
    assert {"id", "type", "actor_id", "user_id", "ip", "user_agent", "created_at"} <= set(event)
    assert event["type"] == event_type
    assert event["user_id"] == expected.user_id
    assert event["actor_id"] == expected.actor_id
    assert event["ip"] == "127.0.0.1"
    timestamp(event["created_at"])


# --- audit log: reading ----------------------------------------------------------------


async def some_history(client: httpx.AsyncClient) -> tuple[Account, Account]:
    """Two users with a few events each."""
    first = await account(client)
    second = await account(client)
    await client.patch(ME, json={"name": "Changed"}, headers=first.headers)
    await client.post(LOGIN, json={"email": second.email, "password": "wrong password"})
    return first, second


async def test_audit_filter_by_user_id_returns_all_and_only_that_users_events(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    first, _ = await some_history(client)
    admin = await superuser(client, container_of(app))
    everything = await audit_events(client, admin.access_token)

    filtered = await audit_events(client, admin.access_token, user_id=first.id)

    assert filtered == [event for event in everything if event["user_id"] == first.id]
    assert {event["type"] for event in filtered} == {
        "user.registered",
        "user.login_succeeded",
        "user.updated",
    }


async def test_audit_filter_by_type_returns_all_and_only_that_type(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await some_history(client)
    admin = await superuser(client, container_of(app))
    everything = await audit_events(client, admin.access_token)

    filtered = await audit_events(client, admin.access_token, type="user.login_succeeded")

    assert filtered == [e for e in everything if e["type"] == "user.login_succeeded"]
    assert len(filtered) == 3  # two users and the admin


async def test_audit_filters_combine(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, second = await some_history(client)
    admin = await superuser(client, container_of(app))

    filtered = await audit_events(
        client, admin.access_token, user_id=second.id, type="user.login_failed"
    )

    assert len(filtered) == 1
    assert filtered[0]["user_id"] == second.id
    assert filtered[0]["type"] == "user.login_failed"


async def test_audit_cursor_visits_every_event_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await some_history(client)
    admin = await superuser(client, container_of(app))
    everything = await audit_events(client, admin.access_token)
    assert len(everything) >= 7

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(AUDIT, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(pages) <= len(everything), "the cursor never ends"

    visited = [event for page in pages for event in page]
    assert visited == everything
    assert len({event["id"] for event in visited}) == len(visited)
    assert all(len(page) == 2 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 2
    created = [timestamp(event["created_at"]) for event in visited]
    assert created == sorted(created, reverse=True)  # newest first


async def test_audit_rejects_an_unknown_type(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await superuser(client, container_of(app))

    response = await client.get(AUDIT, params={"type": "user.hacked"}, headers=admin.headers)

    assert_problem(response, 422)
    assert response.json()["errors"]


async def test_audit_rejects_a_malformed_user_id(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await superuser(client, container_of(app))

    response = await client.get(AUDIT, params={"user_id": "nope"}, headers=admin.headers)

    assert_problem(response, 422)


async def test_audit_log_never_shows_a_password_or_token(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    sink, _ = smtp
    secrets: list[str] = [PASSWORD, NEW_PASSWORD, "a wrong password"]
    user = await account(mail_client)
    secrets += [user.access_token, user.refresh_token]
    await mail_client.post(LOGIN, json={"email": user.email, "password": "a wrong password"})
    await mail_client.post(LOGIN, json={"email": unique_email(), "password": PASSWORD})
    rotated = await mail_client.post(REFRESH, json={"refresh_token": user.refresh_token})
    secrets += [rotated.json()["access_token"], rotated.json()["refresh_token"]]
    await mail_client.post(REFRESH, json={"refresh_token": user.refresh_token})  # reuse
    fresh = await login(mail_client, user.email)
    secrets += [fresh["access_token"], fresh["refresh_token"]]
    verify = await verification_mail(mail_client, sink, fresh["access_token"])
    assert (await mail_client.post(VERIFY_CONFIRM, json={"token": verify.token})).is_success
    reset = await reset_mail(mail_client, mail_app, sink, user.email)
    confirmed = await mail_client.post(
        RESET_CONFIRM, json={"token": reset.token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204
    secrets += [verify.token, reset.token]
    admin = await superuser(mail_client, container_of(mail_app))
    secrets += [admin.access_token, admin.refresh_token]

    raw: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = await mail_client.get(AUDIT, params=params, headers=admin.headers)
        assert response.status_code == 200
        raw.append(response.text)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    text = "".join(raw)
    assert "user.password_reset" in text  # the events are there ...
    for secret in secrets:
        assert secret not in text  # ... their secrets are not


# --- audit log: written with its change, or not at all ---------------------------------


async def test_a_registration_refused_as_email_taken_records_no_event(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register(client)
    admin = await superuser(client, container_of(app))
    before = await audit_events(client, admin.access_token, type="user.registered")

    response = await client.post(
        "/api/v1/users",
        json={"email": user["email"].upper(), "password": PASSWORD, "name": "Twin"},
    )

    assert_problem(response, 400)
    assert await audit_events(client, admin.access_token, type="user.registered") == before


async def test_an_update_refused_by_if_match_records_no_event(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await account(client)
    admin = await superuser(client, container_of(app))
    stale = (await client.get(f"/api/v1/users/{user.id}", headers=user.headers)).headers["etag"]
    path = f"/api/v1/users/{user.id}"
    first = await client.patch(path, json={"name": "First"}, headers=user.headers)
    assert first.status_code == 200, first.text
    before = await audit_events(client, admin.access_token, type="user.updated")
    assert len(before) == 1

    response = await client.patch(
        path, json={"name": "Second"}, headers={**user.headers, "If-Match": stale}
    )

    assert_problem(response, 412)
    assert await audit_events(client, admin.access_token, type="user.updated") == before
    assert (await client.get(ME, headers=user.headers)).json()["name"] == "First"


async def test_an_update_refused_as_email_taken_records_no_event(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await account(client)
    other = await register(client)
    admin = await superuser(client, container_of(app))

    response = await client.patch(ME, json={"email": other["email"]}, headers=user.headers)

    assert_problem(response, 400)
    assert await audit_events(client, admin.access_token, type="user.updated") == []
    assert (await client.get(ME, headers=user.headers)).json()["email"] == user.email


async def test_a_change_whose_audit_event_cannot_be_written_is_rolled_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await account(client)

    async with failing_inserts(app, "audit_events"):
        response = await client.patch(ME, json={"name": "Never saved"}, headers=user.headers)

    assert response.status_code >= 500, response.text
    assert (await client.get(ME, headers=user.headers)).json()["name"] == "Test User"
