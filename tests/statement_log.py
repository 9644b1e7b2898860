"""The SQL statements a test's own requests send, observed at the driver
(SQLAlchemy's ``before_cursor_execute`` event)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from accounts.db.engine import Database

_PARAMETER = re.compile(r"\$\d+|\?|:\w+")


class StatementLog:
    """Every SQL statement run for the requests of one task (the test's: the ASGI client
    runs the app in the caller's task), as its text with parameters elided. The app's
    background loops (mail outbox, key reload) run in tasks of their own."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.task = asyncio.current_task()

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if asyncio.current_task() is self.task:
            self.statements.append(_PARAMETER.sub("?", " ".join(statement.split())))

    @contextmanager
    def listening(self, database: Database) -> Iterator[None]:
        """Record the statements sent through ``database``'s engines meanwhile."""
        engines = _engines(database)
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self)
        try:
            yield
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", self)


def _engines(database: Database) -> list[Engine]:
    # The read and write engines are one engine on PostgreSQL.
    engines = (database.read_engine, database.write_engine)
    return list({id(e): e.sync_engine for e in engines}.values())
