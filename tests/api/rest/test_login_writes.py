"""What a login writes, and what it does when the account changes while its password
is being verified (the verify takes tens of milliseconds, off the event loop).

On PostgreSQL the session, its first refresh token and the login event are written by
one statement that also checks the user (``AuthSessionRepository.open_for_active_user``);
on SQLite by a check and the ORM's inserts. Every test here runs on both.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable

import httpx
import jwt
import pytest
from sqlalchemy.exc import IntegrityError

from accounts.bootstrap import Container
from accounts.db.repositories.auth_sessions import Opening
from accounts.domain.audit import AuditEventType
from accounts.models import AuditEvent, AuthSession, RefreshToken
from accounts.models.base import new_id, utcnow
from accounts.security.opaque import hash_token
from accounts.security.passwords import HashParameters, Match, PasswordHasher
from tests.factories import PASSWORD, login, register
from tests.lock_waits import until_a_statement_waits
from tests.statement_log import StatementLog

LOGIN_URL = "/api/v1/auth/login"
SUCCEEDED = AuditEventType.USER_LOGIN_SUCCEEDED.value


def session_id_of(access_token: str) -> uuid.UUID:
    return uuid.UUID(jwt.decode(access_token, options={"verify_signature": False})["sid"])


async def events_of(container: Container, user_id: uuid.UUID, type_: str) -> list[AuditEvent]:
    async with container.uow() as uow:
        return list(await uow.audit.list(user_id=user_id, type_=type_, before=None, limit=50))


async def live_sessions_of(container: Container, user_id: uuid.UUID) -> list[AuthSession]:
    async with container.uow() as uow:
        return list(await uow.auth_sessions.list_live_for_user(user_id, utcnow()))


async def change_user(container: Container, user_id: uuid.UUID, **columns: object) -> None:
    async with container.uow(write=True) as uow:
        user = await uow.users.get_for_update(user_id)
        assert user is not None
        for name, value in columns.items():
            setattr(user, name, value)
        await uow.commit()


def rows_for(user_id: uuid.UUID) -> tuple[AuthSession, RefreshToken, AuditEvent]:
    now = utcnow()
    session = AuthSession(
        id=new_id(),
        user_id=user_id,
        created_at=now,
        last_used_at=now,
        expires_at=now + dt.timedelta(days=1),
        revoked_at=None,
        user_agent="tests",
        ip="192.0.2.7",
    )
    token = RefreshToken(
        id=new_id(),
        session_id=session.id,
        token_hash=hash_token(uuid.uuid4().hex),
        created_at=now,
        expires_at=session.expires_at,
        used_at=None,
    )
    event = AuditEvent(
        id=new_id(),
        type=SUCCEEDED,
        user_id=user_id,
        actor_id=user_id,
        ip="192.0.2.7",
        user_agent="tests",
        details={"session_id": str(session.id)},
        created_at=now,
    )
    return session, token, event


def columns_of(row: AuthSession | RefreshToken | AuditEvent) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def verify_then(
    container: Container, monkeypatch: pytest.MonkeyPatch, change: Callable[[], Awaitable[None]]
) -> None:
    """Make the next verifies run ``change`` after checking the password, before the
    login writes anything: what a concurrent admin request could do at that moment."""
    verify = container.hasher.verify

    async def verify_and_change(password_hash: str | None, password: str) -> Match:
        matched = await verify(password_hash, password)
        await change()
        return matched

    monkeypatch.setattr(container.hasher, "verify", verify_and_change)


# --- what a login writes ---------------------------------------------------------------


async def test_a_login_writes_its_session_its_refresh_token_and_its_event(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    pair = await login(client, user["email"])
    session_id = session_id_of(pair["access_token"])

    async with container.uow() as uow:
        session = await uow.auth_sessions.get(session_id)
        token = await uow.refresh_tokens.get_by_hash(hash_token(pair["refresh_token"]))
    assert session is not None
    assert session.user_id == user_id
    assert session.revoked_at is None
    assert session.last_used_at == session.created_at
    ttl = dt.timedelta(seconds=container.settings.refresh_token_ttl_seconds)
    assert session.expires_at - session.created_at == ttl
    assert session.user_agent is not None
    assert session.user_agent.startswith("python-httpx/")
    assert session.ip == "127.0.0.1"
    assert token is not None
    assert token.session_id == session_id
    assert token.used_at is None
    assert token.expires_at == session.expires_at
    events = await events_of(container, user_id, SUCCEEDED)
    assert [(e.actor_id, e.details, e.ip) for e in events] == [
        (user_id, {"session_id": str(session_id)}, "127.0.0.1")
    ]


async def test_a_logins_rows_are_written_by_one_statement_on_postgresql(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register(client)
    log = StatementLog()

    with log.listening(container.database):
        await login(client, user["email"])

    writes = [s for s in log.statements if not s.startswith(("SELECT", "BEGIN"))]
    if container.database.is_sqlite:
        # The session first (the others point at it), then in the ORM's own order.
        tables = [" ".join(w.split()[:3]) for w in writes]
        assert tables[0] == "INSERT INTO sessions"
        assert sorted(tables) == [
            "INSERT INTO audit_events",
            "INSERT INTO refresh_tokens",
            "INSERT INTO sessions",
        ]
    else:
        assert len(writes) == 1, writes
        assert writes[0].startswith("WITH login_user AS (SELECT users.id AS id, users.is_active")
        assert "FOR SHARE" in writes[0]
        for table in ("sessions", "refresh_tokens", "audit_events"):
            assert f"INSERT INTO {table} " in writes[0]


async def test_opening_a_session_writes_exactly_the_rows_given(
    client: httpx.AsyncClient, container: Container
) -> None:
    user_id = uuid.UUID((await register(client))["id"])
    session, token, event = rows_for(user_id)

    async with container.uow(write=True) as uow:
        opening = await uow.auth_sessions.open_for_active_user(session, token, event)
        await uow.commit()

    assert opening is Opening.OPENED
    async with container.uow() as uow:
        stored_session = await uow.auth_sessions.get(session.id)
        stored_token = await uow.refresh_tokens.get_by_hash(token.token_hash)
    assert stored_session is not None
    assert stored_token is not None
    assert columns_of(stored_session) == columns_of(session)
    assert columns_of(stored_token) == columns_of(token)
    events = await events_of(container, user_id, SUCCEEDED)
    assert [columns_of(e) for e in events] == [columns_of(event)]


@pytest.mark.parametrize("state", ["unknown", "inactive"])
async def test_opening_a_session_for_a_missing_or_inactive_user_writes_nothing(
    client: httpx.AsyncClient, container: Container, state: str
) -> None:
    if state == "unknown":
        user_id = new_id()
        expected = Opening.NO_USER
    else:
        user_id = uuid.UUID((await register(client))["id"])
        await change_user(container, user_id, is_active=False)
        expected = Opening.INACTIVE_USER
    session, token, event = rows_for(user_id)

    async with container.uow(write=True) as uow:
        opening = await uow.auth_sessions.open_for_active_user(session, token, event)
        await uow.commit()

    assert opening is expected
    async with container.uow() as uow:
        assert await uow.auth_sessions.get(session.id) is None
        assert await uow.refresh_tokens.get_by_hash(token.token_hash) is None
    assert await events_of(container, user_id, SUCCEEDED) == []


async def test_opening_a_session_with_a_required_column_unset_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    user_id = uuid.UUID((await register(client))["id"])
    session, token, event = rows_for(user_id)
    session.expires_at = None  # type: ignore[assignment]

    async def open_session() -> None:
        async with container.uow(write=True) as uow:
            await uow.auth_sessions.open_for_active_user(session, token, event)
            await uow.commit()

    # Refused before anything is sent on PostgreSQL; by the NOT NULL constraint on
    # SQLite, where the ORM writes the rows.
    with pytest.raises((ValueError, IntegrityError), match="expires_at"):
        await open_session()

    async with container.uow() as uow:
        assert await uow.auth_sessions.get(session.id) is None
    assert await events_of(container, user_id, SUCCEEDED) == []


# --- the account changes while the password is verified -------------------------------


@pytest.mark.parametrize(("change", "status"), [("deactivate", 403), ("delete", 401)])
async def test_a_user_deactivated_or_deleted_during_the_verify_gets_no_session(
    client: httpx.AsyncClient,
    container: Container,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    status: int,
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])

    async def deactivate_or_delete() -> None:
        if change == "deactivate":
            await change_user(container, user_id, is_active=False)
            return
        async with container.uow(write=True) as uow:
            assert await uow.users.delete(user_id)
            await uow.commit()

    verify_then(container, monkeypatch, deactivate_or_delete)
    response = await client.post(LOGIN_URL, json={"email": user["email"], "password": PASSWORD})

    assert response.status_code == status, response.text
    assert await live_sessions_of(container, user_id) == []
    assert await events_of(container, user_id, SUCCEEDED) == []


@pytest.mark.parametrize(("change", "status"), [("deactivate", 403), ("delete", 401)])
async def test_a_login_waits_for_a_deactivation_or_deletion_in_progress_and_opens_nothing(
    client: httpx.AsyncClient, container: Container, change: str, status: int
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])

    # The change has locked the user (as the admin endpoints do) but not committed
    # when the login comes to write. Reading the row as it was before the change
    # would open a session the deactivation never revokes, or break the deletion's
    # foreign key (a 500).
    async with container.uow(write=True) as uow:
        if change == "deactivate":
            locked = await uow.users.get_for_update(user_id)
            assert locked is not None
            locked.is_active = False
        else:
            assert await uow.users.delete(user_id)
        logging_in = asyncio.create_task(
            client.post(LOGIN_URL, json={"email": user["email"], "password": PASSWORD})
        )
        await until_a_statement_waits(container, "WITH login_user ")
        await uow.commit()
    response = await logging_in

    assert response.status_code == status, response.text
    assert await live_sessions_of(container, user_id) == []
    assert await events_of(container, user_id, SUCCEEDED) == []


# --- rehashing at the configured cost ----------------------------------------------------


async def hash_at_owasps_7_mib_cost(password: str) -> str:
    hasher = PasswordHasher(HashParameters(memory_kib=7 * 1024, time_cost=5), workers=1)
    try:
        return await hasher.hash(password)
    finally:
        hasher.close()


async def stored_hash(container: Container, user_id: uuid.UUID) -> str:
    async with container.uow() as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user.password_hash


async def test_a_login_rehashes_a_password_stored_at_another_cost(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    older = await hash_at_owasps_7_mib_cost(PASSWORD)
    await change_user(container, user_id, password_hash=older)
    assert container.hasher.needs_rehash(older)

    await login(client, user["email"])

    rehashed = await stored_hash(container, user_id)
    assert rehashed != older
    assert not container.hasher.needs_rehash(rehashed)
    assert await container.hasher.verify(rehashed, PASSWORD)
    # And the rehashed password still logs in.
    await login(client, user["email"])


async def test_a_rehash_leaves_a_password_changed_during_the_verify_alone(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    await change_user(container, user_id, password_hash=await hash_at_owasps_7_mib_cost(PASSWORD))
    changed = await container.hasher.hash("a new password, set by a reset")

    async def change_password() -> None:
        await change_user(container, user_id, password_hash=changed)

    verify_then(container, monkeypatch, change_password)
    await login(client, user["email"])

    assert await stored_hash(container, user_id) == changed


async def test_a_rehash_is_not_kept_when_the_login_fails_for_a_user_deactivated_meanwhile(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    older = await hash_at_owasps_7_mib_cost(PASSWORD)
    await change_user(container, user_id, password_hash=older)

    async def deactivate() -> None:
        await change_user(container, user_id, is_active=False)

    verify_then(container, monkeypatch, deactivate)
    response = await client.post(LOGIN_URL, json={"email": user["email"], "password": PASSWORD})

    assert response.status_code == 403, response.text
    assert await stored_hash(container, user_id) == older
