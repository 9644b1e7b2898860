"""The session check's kept connections (db/kept_connections.py), on real PostgreSQL.

They must save the pool's round trip without changing what the pool guarantees: no
connection leaked or held for ever, a small pool never held idle, a broken connection
never handed out twice, and everything back in the pool when the database closes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.engine.interfaces import PoolProxiedConnection

from accounts.db.engine import Database, DatabaseConfig
from accounts.db.kept_connections import MAX_KEPT, KeptConnections, kept_limit
from accounts.db.session_check import SessionCheck
from accounts.models.base import utcnow


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(DatabaseConfig(url=postgres_url, pool_size=8, max_overflow=0))
    try:
        yield database
    finally:
        await database.dispose()


def checkouts(database: Database) -> list[int]:
    """A live count of the pool's checkouts."""
    count = [0]

    def checked_out(*_args: object) -> None:
        count[0] += 1

    event.listen(database.write_engine.pool, "checkout", checked_out)
    return count


def checked_out(database: Database) -> int:
    return int(database.write_engine.pool.checkedout())  # type: ignore[attr-defined]


async def check(database: Database) -> None:
    # Any ids: the answer (no such session) does not matter, the connection does.
    assert await SessionCheck(database)(uuid.uuid4(), uuid.uuid4(), utcnow()) is None


def test_a_pool_lends_a_quarter_of_itself_at_most_and_a_small_pool_nothing() -> None:
    assert [kept_limit(size) for size in (1, 3, 4, 8, 20, 200)] == [0, 0, 1, 2, MAX_KEPT, MAX_KEPT]


async def test_repeated_checks_reuse_one_connection_without_the_pool(database: Database) -> None:
    count = checkouts(database)

    for _ in range(5):
        await check(database)

    assert count[0] == 1
    assert database.kept is not None
    assert database.kept.idle == 1
    # Kept idle is idle in the pool's metrics, not in use.
    assert database.pool_stats()["checked_out"] == 0


async def test_connections_given_back_beyond_the_limit_return_to_the_pool(
    database: Database,
) -> None:
    kept = database.kept
    assert kept is not None
    taken = [await kept.take() for _ in range(5)]
    assert checked_out(database) == 5

    for connection in taken:
        await kept.give_back(connection)

    assert kept.idle == kept_limit(8) == 2
    assert checked_out(database) == 2


async def test_a_quiet_process_returns_its_kept_connections_when_they_age(
    postgres_url: str,
) -> None:
    database = Database(DatabaseConfig(url=postgres_url, pool_size=8, max_overflow=0))
    assert database.kept is not None
    database.kept = KeptConnections(database.read_engine, limit=2, max_age=0.3)
    try:
        await check(database)
        assert database.kept.idle == 1

        # No further call: the kept connection goes back on its own.
        await asyncio.sleep(0.6)

        assert database.kept.idle == 0
        assert checked_out(database) == 0
    finally:
        await database.dispose()


async def test_nothing_is_kept_while_the_pool_is_in_overflow(postgres_url: str) -> None:
    database = Database(DatabaseConfig(url=postgres_url, pool_size=4, max_overflow=2))
    kept = database.kept
    assert kept is not None
    try:
        taken = [await kept.take() for _ in range(6)]  # the pool's 4 and both overflow
        for connection in taken:
            await kept.give_back(connection)
        assert kept.idle == 0

        await check(database)  # out of overflow: kept again
        assert kept.idle == 1
    finally:
        await database.dispose()


async def test_a_small_pool_keeps_nothing(postgres_url: str) -> None:
    database = Database(DatabaseConfig(url=postgres_url, pool_size=1, max_overflow=0))
    try:
        await check(database)
        assert checked_out(database) == 0
    finally:
        await database.dispose()


async def test_disposing_returns_every_kept_connection(postgres_url: str) -> None:
    database = Database(DatabaseConfig(url=postgres_url, pool_size=8, max_overflow=0))
    await check(database)
    assert checked_out(database) == 1

    await database.dispose()

    assert checked_out(database) == 0
    assert database.kept is not None
    assert database.kept.idle == 0


async def server_closes(pooled: PoolProxiedConnection, postgres_url: str) -> None:
    """Terminate ``pooled``'s backend, and wait until the client has seen it close."""
    driver: Any = pooled.driver_connection
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", driver.get_server_pid())
    finally:
        await admin.close()
    for _ in range(100):
        if driver.is_closed():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the client never saw its connection close")


async def test_a_kept_connection_the_server_closed_is_not_handed_out(
    database: Database, postgres_url: str
) -> None:
    await check(database)
    kept = database.kept
    assert kept is not None
    taken = await kept.take()
    await kept.give_back(taken)
    await server_closes(taken[0], postgres_url)

    await check(database)  # on a fresh connection, not a 503

    assert kept.idle == 1
    assert kept._idle[0][0] is not taken[0]
    assert checked_out(database) == 1
