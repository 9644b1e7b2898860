"""The start-up database check gives up on a server that never answers."""

from __future__ import annotations

import asyncio
import time

import pytest

from accounts.db.connect_check import DatabaseUnreachable, check_connection
from accounts.db.engine import Database, DatabaseConfig


async def test_a_server_that_accepts_and_never_answers_is_unreachable_within_the_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # kept open, never written to

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    database = Database(DatabaseConfig(url=f"postgresql+asyncpg://nobody@127.0.0.1:{port}/x"))
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnreachable, match=r"no answer within 0\.5 s"):
            await check_connection(database, timeout_seconds=0.5)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await database.dispose()
    assert accepted, "the check never connected"
    assert time.monotonic() - started < 5
