"""The unit of work's ending, on SQLite and PostgreSQL: whatever way it ends, no
connection stays checked out, and only a commit keeps what was written."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import inspect, text

from accounts.bootstrap import Container
from accounts.db.unit_of_work import UnitOfWork
from accounts.models import User
from tests.factories import account


def checked_out(container: Container) -> int:
    """Connections in use by requests, in every pool (SQLite reads have their own)."""
    database = container.database
    in_use = database.pool_stats()["checked_out"]
    if database.read_engine.pool is not database.write_engine.pool:
        in_use += int(database.read_engine.pool.checkedout())  # type: ignore[attr-defined]
    return in_use


async def settled(container: Container, within: float = 3.0) -> int:
    """Connections in use once none are (or after ``within`` s): the app's background
    work (the mail outbox, the key reload) borrows one now and then."""
    deadline = time.monotonic() + within
    while True:
        count = checked_out(container)
        if count == 0 or time.monotonic() >= deadline:
            return count
        await asyncio.sleep(0.02)


async def fail_after_a_flushed_change(container: Container, user_id: uuid.UUID) -> None:
    async with container.uow(write=True) as uow:
        user = await uow.users.get(user_id)
        assert user is not None
        user.name = "Never Committed"
        await uow.session.flush()
        raise LookupError("the use case failed")


async def name_of(container: Container, user_id: uuid.UUID) -> str:
    async with container.uow() as uow:
        user = await uow.users.get(user_id)
        assert user is not None
        return user.name


async def rename_and_commit(uow: UnitOfWork, user_id: uuid.UUID, name: str) -> User:
    user = await uow.users.get(user_id)
    assert user is not None
    user.name = name
    await uow.commit()
    return user


async def test_a_committed_write_keeps_its_change_and_holds_no_connection(
    client: httpx.AsyncClient, container: Container
) -> None:
    caller = await account(client)

    async with container.uow(write=True) as uow:
        user = await rename_and_commit(uow, uuid.UUID(caller.id), "Committed Name")
        assert await settled(container) == 0  # given back at the commit

    assert await settled(container) == 0
    assert user.name == "Committed Name"  # loaded objects stay readable
    assert inspect(user).detached
    assert await name_of(container, uuid.UUID(caller.id)) == "Committed Name"


async def test_a_write_left_without_commit_is_rolled_back_and_holds_no_connection(
    client: httpx.AsyncClient, container: Container
) -> None:
    caller = await account(client)
    before = await name_of(container, uuid.UUID(caller.id))

    with pytest.raises(LookupError):
        await fail_after_a_flushed_change(container, uuid.UUID(caller.id))

    assert await settled(container) == 0
    assert await name_of(container, uuid.UUID(caller.id)) == before


async def test_a_read_and_an_untouched_write_hold_no_connection_afterwards(
    client: httpx.AsyncClient, container: Container
) -> None:
    caller = await account(client)

    async with container.uow() as uow:
        user = await uow.users.get(uuid.UUID(caller.id))
        assert user is not None
        assert checked_out(container) >= 1
    async with container.uow(write=True):
        pass

    assert await settled(container) == 0
    assert inspect(user).detached


async def test_a_read_after_a_commit_is_closed_too(
    client: httpx.AsyncClient, container: Container
) -> None:
    caller = await account(client)

    async with container.uow(write=True) as uow:
        await rename_and_commit(uow, uuid.UUID(caller.id), "Renamed Then Read")
        # A new transaction, and a connection, after the commit.
        assert (await uow.session.execute(text("SELECT 1"))).scalar_one() == 1
        assert uow.session.in_transaction()
        assert checked_out(container) >= 1

    assert await settled(container) == 0
    assert await name_of(container, uuid.UUID(caller.id)) == "Renamed Then Read"
