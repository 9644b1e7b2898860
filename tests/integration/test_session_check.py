"""The ORM-free session check behind every authenticated request (db/session_check.py).

It must answer exactly what the ORM query it replaced answered, on both databases:
the user of a live session of an active user, else nothing; and a database that is
away must be a 503, with the borrowed connection never leaked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid

import httpx
import pytest
from sqlalchemy import inspect, text, update

from accounts.bootstrap import Container
from accounts.db.engine import Database, DatabaseConfig
from accounts.db.session_check import USER_COLUMNS, SessionCheck
from accounts.domain.errors import ServiceUnavailable
from accounts.models import AuthSession, User
from accounts.models.base import utcnow
from accounts.security.tokens import AccessClaims
from tests.factories import Account, account, bearer

ME = "/api/v1/users/me"


def claims_of(container: Container, token: str) -> AccessClaims:
    return container.auth._access_tokens.verify(token)


async def live(container: Container, token: str) -> tuple[AccessClaims, User | None]:
    claims = claims_of(container, token)
    check = SessionCheck(container.database)
    return claims, await check(claims.session_id, claims.user_id, utcnow())


async def test_a_live_session_yields_the_same_user_the_orm_loads(
    client: httpx.AsyncClient, container: Container
) -> None:
    caller = await account(client)
    claims, user = await live(container, caller.access_token)

    assert user is not None
    async with container.uow() as uow:
        loaded = await uow.users.get(claims.user_id)
    assert loaded is not None
    for column in USER_COLUMNS:
        assert getattr(user, column) == getattr(loaded, column), column
    assert type(user.id) is uuid.UUID
    assert user.created_at.tzinfo is not None
    assert user.created_at.utcoffset() == dt.timedelta(0)
    # Never the hash, and no pending changes that a session could flush by mistake.
    assert user.password_hash == ""
    state = inspect(user)
    assert state.transient
    assert not state.modified


@pytest.mark.parametrize("change", ["revoked", "expired", "deactivated"])
async def test_a_session_that_is_not_live_yields_nothing(
    client: httpx.AsyncClient, container: Container, change: str
) -> None:
    caller = await account(client)
    claims = claims_of(container, caller.access_token)
    past = utcnow() - dt.timedelta(seconds=1)
    async with container.uow(write=True) as uow:
        if change == "deactivated":
            statement = update(User).where(User.id == claims.user_id).values(is_active=False)
        else:
            column = "revoked_at" if change == "revoked" else "expires_at"
            statement = (
                update(AuthSession)
                .where(AuthSession.id == claims.session_id)
                .values({column: past})
            )
        await uow.session.execute(statement)
        await uow.commit()

    _, user = await live(container, caller.access_token)

    assert user is None
    # And the API agrees, through the same check.
    assert (await client.get(ME, headers=caller.headers)).status_code == 401


async def test_a_session_is_only_its_own_users(
    client: httpx.AsyncClient, container: Container
) -> None:
    first, second = await account(client), await account(client)
    mine = claims_of(container, first.access_token)
    theirs = claims_of(container, second.access_token)
    check = SessionCheck(container.database)

    assert await check(mine.session_id, theirs.user_id, utcnow()) is None
    assert await check(uuid.uuid4(), mine.user_id, utcnow()) is None
    assert await check(mine.session_id, mine.user_id, utcnow()) is not None


async def unreachable_url(database_url: str, tmp_path_name: str) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:////nonexistent-{tmp_path_name}/accounts.db"
    # A loopback port nobody listens on: connecting is refused at once.
    return "postgresql+asyncpg://postgres@127.0.0.1:9/postgres"


async def test_an_unreachable_database_is_service_unavailable(database_url: str) -> None:
    url = await unreachable_url(database_url, uuid.uuid4().hex)
    database = Database(DatabaseConfig(url=url, pool_timeout=2))
    threads_before = set(threading.enumerate())
    try:
        with pytest.raises(ServiceUnavailable):
            await SessionCheck(database)(uuid.uuid4(), uuid.uuid4(), utcnow())
    finally:
        await database.dispose()
        # aiosqlite stops the worker thread of a failed connect without waiting for it;
        # let it finish while this loop still runs, or it reports to a closed loop.
        for thread in set(threading.enumerate()) - threads_before:
            if "_connection_worker_thread" in thread.name:
                await asyncio.to_thread(thread.join, 5)


async def test_a_cancelled_check_returns_its_connection_and_the_next_one_works(
    client: httpx.AsyncClient, container: Container, database_url: str
) -> None:
    caller: Account = await account(client)
    claims = claims_of(container, caller.access_token)
    check = SessionCheck(container.database)
    # Warm: on PostgreSQL the check now keeps a connection, the one the next check takes.
    assert await check(claims.session_id, claims.user_id, utcnow()) is not None

    if database_url.startswith("sqlite"):
        # WAL readers never wait on a lock: cancel as soon as the check has started.
        task = asyncio.create_task(check(claims.session_id, claims.user_id, utcnow()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        # Hold a lock that makes the check's SELECT wait, then cancel it mid-statement.
        async with container.database.write_engine.connect() as blocker:
            await blocker.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
            task = asyncio.create_task(check(claims.session_id, claims.user_id, utcnow()))
            await asyncio.sleep(0.3)
            assert not task.done(), "the check did not wait on the lock"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await blocker.rollback()

    # The cancelled check's connection (the kept one, on PostgreSQL) is discarded, not
    # kept, and nothing else is left checked out.
    if container.database.kept is not None:
        assert container.database.kept.idle == 0
    engines = {container.database.read_engine.pool, container.database.write_engine.pool}
    assert [pool.checkedout() for pool in engines] == [0] * len(engines)  # type: ignore[attr-defined]
    user = await check(claims.session_id, claims.user_id, utcnow())
    assert user is not None
    assert str(user.id) == caller.id
    assert (await client.get(ME, headers=bearer(caller.access_token))).status_code == 200
