"""The session check every authenticated request makes, without the ORM.

"Is this session live, and its user active? Then who is the user?" is the one query
on the hot path of every authenticated read that misses the shared cache (and every
one, when there is no Redis). Through an ORM ``Session`` it cost ~260 µs of CPU
per call; on PostgreSQL this module runs it as one prepared statement on an
asyncpg connection from SQLAlchemy's own pool (~80 µs), kept between calls
(db/kept_connections.py), and on SQLite as a Core statement. It reads the same rows
the ORM would, and returns the same detached ``User`` (without its password hash, as
the shared cache does: no caller of an authenticated principal needs it). See docs/performance.md.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Protocol

import asyncpg
from sqlalchemy import bindparam, select

from accounts.db.engine import Database
from accounts.db.errors import has_unavailable_sqlstate, is_unavailable
from accounts.domain.errors import ServiceUnavailable
from accounts.models import AuthSession, User
from accounts.models.base import UTCDateTime

# Every column but the password hash, in table order.
USER_COLUMNS: tuple[str, ...] = tuple(
    column.name for column in User.__table__.columns if column.name != "password_hash"
)

_POSTGRES_SQL = (
    f"SELECT {', '.join('u.' + name for name in USER_COLUMNS)} "  # noqa: S608 - constants
    "FROM users AS u JOIN sessions AS s ON s.user_id = u.id "
    "WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3 "
    "AND u.is_active"
)

_users = User.__table__.c
_sessions = AuthSession.__table__.c
_CORE_STATEMENT = (
    select(*(_users[name] for name in USER_COLUMNS))
    .join_from(User.__table__, AuthSession.__table__, _sessions.user_id == _users.id)
    .where(
        _sessions.id == bindparam("session_id"),
        _sessions.user_id == bindparam("user_id"),
        _sessions.revoked_at.is_(None),
        _sessions.expires_at > bindparam("now", type_=UTCDateTime()),
        _users.is_active.is_(True),
    )
)


class LiveUserLookup(Protocol):
    async def __call__(
        self, session_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
    ) -> User | None:
        """The session's user, if the session is live and the user exists and is active.

        Raises:
            ServiceUnavailable: the database could not be reached.
        """


def _user(user_id: uuid.UUID, values: Any) -> User:
    state = dict(zip(USER_COLUMNS, values, strict=True))
    # The id the caller matched on, as a plain uuid.UUID (asyncpg returns its own type).
    state["id"] = user_id
    return User.detached(password_hash="", **state)


class SessionCheck:
    """``LiveUserLookup`` for ``database``: raw asyncpg on PostgreSQL, Core on SQLite."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._is_postgres = database.read_engine.dialect.driver == "asyncpg"

    async def __call__(
        self, session_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
    ) -> User | None:
        if self._is_postgres:
            return await self._postgres(session_id, user_id, now)
        return await self._core(session_id, user_id, now)

    async def _core(
        self, session_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
    ) -> User | None:
        parameters = {"session_id": session_id, "user_id": user_id, "now": now}
        try:
            async with self._database.read_engine.connect() as connection:
                row = (await connection.execute(_CORE_STATEMENT, parameters)).first()
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise
        return None if row is None else _user(user_id, row)

    async def _postgres(
        self, session_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
    ) -> User | None:
        engine = self._database.read_engine
        kept = self._database.kept
        assert kept is not None  # every PostgreSQL Database keeps some
        try:
            taken = await kept.take()
        except Exception as exc:
            if is_unavailable(exc) or _is_driver_unavailable(exc, engine.dialect.loaded_dbapi):
                raise ServiceUnavailable() from exc
            raise
        pooled = taken[0]
        # No transaction is open on a checked-out connection that is not in use, so this
        # one statement runs in autocommit, as every read on PostgreSQL does here
        # (db/engine.py).
        connection: asyncpg.Connection = pooled.driver_connection
        try:
            row = await connection.fetchrow(_POSTGRES_SQL, session_id, user_id, now)
        except BaseException as exc:
            # Asked before invalidating, which closes it.
            closed_under_us = _met_a_closed_connection(exc, connection)
            # Broken, or interrupted mid-statement (a cancelled request): either way the
            # connection's state is unknown, so the pool must not hand it out again.
            # (Invalidating also checks it in: the pool opens a fresh one when needed.)
            pooled.invalidate(exc if isinstance(exc, Exception) else None)
            if isinstance(exc, Exception) and (
                closed_under_us or _is_driver_unavailable(exc, None)
            ):
                raise ServiceUnavailable() from exc
            raise
        await kept.give_back(taken)
        return None if row is None else _user(user_id, tuple(row))


def _is_driver_unavailable(exc: Exception, dbapi: Any) -> bool:
    """asyncpg's own errors (raised past SQLAlchemy here), and the DBAPI adapter's."""
    if isinstance(exc, OSError | asyncpg.InterfaceError) or has_unavailable_sqlstate(exc):
        return True
    return dbapi is not None and isinstance(exc, dbapi.OperationalError | dbapi.InterfaceError)


def _met_a_closed_connection(exc: BaseException, connection: asyncpg.Connection) -> bool:
    """asyncpg raises ``InternalClientError`` (``cannot switch to state …``) when a
    statement meets a connection the server closed a moment before the client saw it
    close. The connection is discarded and a retry gets a fresh one, so that is a 503;
    the same error on an open connection is a bug, and stays a 500."""
    return isinstance(exc, asyncpg.InternalClientError) and connection.is_closed()
