"""Writers in one process queue on the unit of work's writer lock (SQLite only).

SQLite's busy handler waits by sleeping and polling, so writers that met SQLite's
lock could sleep through many others' transactions. Within a process they queue on
an asyncio lock instead, before they check out a connection, and take turns in the
order they came. PostgreSQL has row locks and needs no such queue.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from accounts.db.engine import Database, DatabaseConfig
from accounts.db.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from accounts.domain.errors import ServiceUnavailable


@pytest.fixture
async def sqlite_database(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "writers.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(DatabaseConfig(f"sqlite+aiosqlite:///{path}"))
    try:
        yield database
    finally:
        await database.dispose()


def checked_out(database: Database) -> int:
    return int(database.write_engine.pool.checkedout())


async def settle() -> None:
    """Let every task that can run without I/O get as far as it can (a writer that
    has to wait for its turn waits before any I/O)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def hold_write(
    uow: UnitOfWorkFactory, release: asyncio.Event, entered: asyncio.Event | None = None
) -> None:
    async with uow(write=True) as work:
        await work.session.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: SQLite's lock
        if entered is not None:
            entered.set()
        await release.wait()


async def holding(uow: UnitOfWorkFactory, release: asyncio.Event) -> asyncio.Task[None]:
    """A task that holds a write transaction until ``release`` is set."""
    entered = asyncio.Event()
    task = asyncio.create_task(hold_write(uow, release, entered))
    async with asyncio.timeout(10):
        await entered.wait()
    return task


async def fail_inside_a_write(uow: UnitOfWorkFactory) -> None:
    async with uow(write=True) as work:
        await work.session.execute(text("SELECT 1"))
        raise RuntimeError("boom")


async def test_sqlite_writers_wait_their_turn_before_taking_a_connection(
    sqlite_database: Database,
) -> None:
    uow = unit_of_work_factory(sqlite_database)
    release = asyncio.Event()
    entered: list[str] = []

    async def writer(name: str) -> None:
        async with uow(write=True) as work:
            entered.append(name)
            await work.session.execute(
                text("UPDATE users SET name = name WHERE email_key = :key"), {"key": name}
            )
            await work.commit()

    holder = await holding(uow, release)
    entered.append("holder")
    waiters = []
    for name in ("first", "second", "third"):
        waiters.append(asyncio.create_task(writer(name)))
        await settle()

    # Queued in the process: only the holder has a connection, so none of the others
    # sleeps in SQLite's busy handler.
    assert entered == ["holder"]
    assert checked_out(sqlite_database) == 1

    release.set()
    await asyncio.gather(holder, *waiters)

    assert entered == ["holder", "first", "second", "third"]
    assert checked_out(sqlite_database) == 0


async def test_a_sqlite_writer_that_cannot_get_its_turn_in_time_is_unavailable(
    sqlite_database: Database,
) -> None:
    uow = unit_of_work_factory(sqlite_database)
    sqlite_database.writer_lock_timeout = 0.05
    release = asyncio.Event()
    holder = await holding(uow, release)

    with pytest.raises(ServiceUnavailable):
        async with uow(write=True):
            pytest.fail("entered while another writer held the lock")

    release.set()
    await holder
    async with uow(write=True) as work:  # the queue is not left jammed
        await work.session.execute(text("SELECT 1"))


def queue_of(database: Database) -> tuple[UnitOfWorkFactory, asyncio.Lock]:
    """The database's units of work and the writer lock they queue on."""
    lock = database.writer_lock
    assert lock is not None
    return unit_of_work_factory(database), lock


async def test_the_writer_turn_is_passed_on_after_an_error_or_a_cancellation(
    sqlite_database: Database,
) -> None:
    uow, lock = queue_of(sqlite_database)

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside_a_write(uow)
    assert not lock.locked()

    # Cancelled while holding the turn.
    release = asyncio.Event()
    holder = await holding(uow, release)
    assert lock.locked()
    # Cancelled while waiting for it.
    waiter = asyncio.create_task(hold_write(uow, asyncio.Event()))
    await settle()
    waiter.cancel()
    holder.cancel()
    results = await asyncio.gather(holder, waiter, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)

    assert not lock.locked()
    assert checked_out(sqlite_database) == 0
    async with uow(write=True) as work:
        await work.session.execute(text("SELECT 1"))


async def test_a_write_opened_inside_another_in_the_same_task_fails_at_once(
    sqlite_database: Database,
) -> None:
    uow, lock = queue_of(sqlite_database)

    async with uow(write=True) as outer:
        await outer.session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="already open in this task"):
            await uow(write=True).__aenter__()
        await outer.commit()

    assert not lock.locked()
    assert sqlite_database.writer is None
    # Another task's write still gets its turn after the outer one.
    await asyncio.create_task(hold_write(uow, released()))


def released() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def test_reads_do_not_wait_for_a_sqlite_writer(sqlite_database: Database) -> None:
    uow = unit_of_work_factory(sqlite_database)
    release = asyncio.Event()
    holder = await holding(uow, release)

    async with uow() as work:
        assert (await work.session.execute(text("SELECT 1"))).scalar_one() == 1

    release.set()
    await holder


async def test_postgresql_writers_are_not_queued_in_the_process(
    postgres_url: str,
) -> None:
    database = Database(DatabaseConfig(postgres_url))
    try:
        assert database.writer_lock is None
        uow = unit_of_work_factory(database)
        async with uow(write=True) as first, uow(write=True) as second:
            await first.session.execute(text("SELECT 1"))
            await second.session.execute(text("SELECT 1"))
            assert checked_out(database) == 2
    finally:
        await database.dispose()
