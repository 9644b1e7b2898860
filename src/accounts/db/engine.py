"""Engines and session factories for SQLite (embedded) and PostgreSQL (production).

SQLite allows one writer at a time. Python's sqlite3 driver opens transactions
lazily, so a transaction that reads and then writes can find that another writer
committed in between, and fails at once with "database is locked" (no busy wait
helps there). Writers therefore take the write lock up front with
``BEGIN IMMEDIATE``; readers use a plain ``BEGIN`` and, with WAL, never block or
are blocked by the writer. Within a process, writers also queue on an asyncio lock
(``Database.writer_lock``, taken by the unit of work) before they reach SQLite:
SQLite's own busy handler waits by sleeping and polling, up to 100 ms a turn, so a
writer that arrived early could sleep through many others' transactions (seconds of
tail latency under concurrent logins), where the lock hands over in arrival order the
moment the holder finishes. The busy timeout remains for writers in other processes.
PostgreSQL needs none of this: both factories share one engine there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from accounts.db.kept_connections import KeptConnections, kept_limit

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long a write waits for the in-process writer lock: as long as for SQLite's.
WRITER_LOCK_TIMEOUT_SECONDS = SQLITE_BUSY_TIMEOUT_MS / 1000
SQLITE_POOL_LIMIT = 4


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str
    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout: float = 5.0
    echo: bool = False


class Database:
    """Owns the engines; built by bootstrap, disposed by the app's lifespan."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self.is_sqlite = config.url.startswith("sqlite")
        # The session check's connections, kept between requests (PostgreSQL only:
        # on SQLite the check runs through Core, on a pool of its own).
        self.kept: KeptConnections | None = None
        # SQLite's one writer, queued for in this process (see the module docstring).
        # Like the pools, it belongs to the event loop that uses the Database first.
        self.writer_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self.writer_lock_timeout = WRITER_LOCK_TIMEOUT_SECONDS
        # The task holding writer_lock: a second write unit of work opened inside the
        # first would wait for itself; it fails at once instead.
        self.writer: asyncio.Task[object] | None = None
        if self.is_sqlite:
            self.write_engine = self._sqlite_engine(begin="BEGIN IMMEDIATE")
            self.read_engine = self._sqlite_engine(begin="BEGIN")
        else:
            self.write_engine = create_async_engine(
                config.url,
                pool_size=config.pool_size,
                max_overflow=config.max_overflow,
                pool_timeout=config.pool_timeout,
                # No pre-ping: it is a round trip on every checkout. A connection
                # broken by a database restart fails its statement instead, is
                # invalidated by the pool, and that one request answers 503.
                pool_pre_ping=False,
                pool_recycle=1800,
                echo=config.echo,
            )
            # Reads run in autocommit: one round trip per statement instead of
            # BEGIN + statement + ROLLBACK. Under READ COMMITTED each statement sees
            # its own snapshot anyway, so a read transaction bought no consistency.
            self.read_engine = self.write_engine.execution_options(isolation_level="AUTOCOMMIT")
            self.kept = KeptConnections(self.read_engine, kept_limit(config.pool_size))
        self.write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    def _sqlite_engine(self, *, begin: str) -> AsyncEngine:
        engine = create_async_engine(
            self.config.url,
            # SQLite has one writer, and each aiosqlite connection is a thread with its
            # own ~2 MiB page cache: more than a few connections per engine only cost
            # memory.
            pool_size=min(self.config.pool_size, SQLITE_POOL_LIMIT),
            max_overflow=min(self.config.max_overflow, SQLITE_POOL_LIMIT),
            pool_timeout=self.config.pool_timeout,
            echo=self.config.echo,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Hand transaction control to SQLAlchemy (see the module docstring).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

        return engine

    def pool_stats(self) -> dict[str, int]:
        """Connections of the write pool (the only pool on PostgreSQL) by state. The
        pool counts the session check's kept connections as checked out; here they are
        ``kept``, and ``checked_out`` is what requests are using."""
        pool: Any = self.write_engine.pool
        kept = self.kept.idle if self.kept is not None else 0
        try:
            return {
                "checked_out": int(pool.checkedout()) - kept,
                "kept": kept,
                "idle": int(pool.checkedin()),
                "overflow": max(0, int(pool.overflow())),
                "size": int(pool.size()),
            }
        except AttributeError:  # a pool kind without these counters
            return {}

    async def ping(self) -> None:
        """Run a trivial query; raises if the database does not answer."""
        async with self.read_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        try:
            if self.kept is not None:
                await self.kept.close()
        finally:
            await self.write_engine.dispose()
            if self.read_engine is not self.write_engine:
                await self.read_engine.dispose()


def new_session(database: Database, *, write: bool) -> AsyncSession:
    factory = database.write_sessions if write else database.read_sessions
    return factory()
