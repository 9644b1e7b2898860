"""Waiting, in a test, until a concurrent statement waits for a row lock the test holds."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from accounts.bootstrap import Container

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock' AND query LIKE :prefix"
)


async def until_a_statement_waits(container: Container, prefix: str) -> None:
    """Return once a statement starting with ``prefix`` waits for a lock (PostgreSQL).

    On SQLite one writer runs at a time: the other transaction cannot write before
    the test's commits, wherever it has got to; it is given time to get to the
    writer lock.
    """
    if container.database.is_sqlite:
        await asyncio.sleep(0.1)
        return
    deadline = time.monotonic() + 10
    async with container.database.read_engine.connect() as connection:
        while not (await connection.execute(_WAITING, {"prefix": prefix + "%"})).scalar_one():
            assert time.monotonic() < deadline, f"no {prefix!r} statement ever waited"
            await asyncio.sleep(0.01)
