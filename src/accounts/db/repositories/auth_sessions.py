"""Queries on ``sessions``."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Insert,
    Select,
    Table,
    bindparam,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import AuditEvent, AuthSession, RefreshToken, User
from accounts.models.base import Base


class Opening(enum.Enum):
    """What came of opening a session for a user (``open_for_active_user``)."""

    OPENED = "opened"
    NO_USER = "no_user"
    INACTIVE_USER = "inactive_user"


class AuthSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, auth_session: AuthSession) -> AuthSession:
        self._session.add(auth_session)
        # Written now: the models have no relationship() for the unit of work to order
        # inserts by, so rows that point at this session must find it already there.
        await self._session.flush()
        return auth_session

    async def open_for_active_user(
        self, auth_session: AuthSession, first_token: RefreshToken, event: AuditEvent
    ) -> Opening:
        """Write a new session, its first refresh token and the audit event that
        records it, if the session's user exists and is active; otherwise write nothing.

        Every column of the three rows must be set by the caller: no defaults are
        applied. The user may have been deactivated or deleted while their password
        was being verified, which is why the check is made here, with the writes.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            return await self._open_in_one_statement(auth_session, first_token, event)
        # SQLite cannot write from a WITH clause. Its round trips are calls into a
        # local library, so four statements cost little there.
        is_active = (
            await self._session.execute(
                select(User.is_active).where(User.id == auth_session.user_id)
            )
        ).scalar_one_or_none()
        if is_active is None:
            return Opening.NO_USER
        if not is_active:
            return Opening.INACTIVE_USER
        await self.add(auth_session)
        self._session.add_all([first_token, event])
        return Opening.OPENED

    async def _open_in_one_statement(
        self, auth_session: AuthSession, first_token: RefreshToken, event: AuditEvent
    ) -> Opening:
        # The user check and the three inserts in one statement: one round trip
        # instead of four, each of which costs the event loop a socket write and the
        # ORM's bookkeeping (docs/performance.md). PostgreSQL checks the foreign keys
        # once the whole statement has run, when the session the others point at is there.
        parameters = {
            "login_user_id": auth_session.user_id,
            **_parameters(auth_session, SESSION_PREFIX),
            **_parameters(first_token, REFRESH_PREFIX),
            **_parameters(event, EVENT_PREFIX),
        }
        result = await self._session.execute(_OPEN_FOR_ACTIVE_USER, parameters)
        is_active = result.scalar_one_or_none()
        if is_active is None:
            return Opening.NO_USER
        return Opening.OPENED if is_active else Opening.INACTIVE_USER

    async def get(self, session_id: uuid.UUID) -> AuthSession | None:
        return await self._session.get(AuthSession, session_id)

    async def get_for_update(self, session_id: uuid.UUID) -> AuthSession | None:
        """Load and row-lock a session (``FOR NO KEY UPDATE``: it does not hold up
        the foreign key checks of rows that point at it), so that changes to it and
        the deletion of its user queue behind this transaction."""
        statement = (
            select(AuthSession)
            .where(AuthSession.id == session_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def list_live_for_user(
        self, user_id: uuid.UUID, now: dt.datetime
    ) -> Sequence[AuthSession]:
        statement = (
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.created_at.desc())
        )
        return list((await self._session.execute(statement)).scalars())

    async def touch(self, session_id: uuid.UUID, now: dt.datetime) -> None:
        await self._session.execute(
            update(AuthSession).where(AuthSession.id == session_id).values(last_used_at=now)
        )

    async def revoke(self, session_id: uuid.UUID, now: dt.datetime) -> bool:
        """Revoke one session; False when it was already revoked or never existed."""
        result = await self._session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_all_for_user(
        self, user_id: uuid.UUID, now: dt.datetime, *, except_id: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        """Revoke a user's live sessions (all but ``except_id``); returns their ids."""
        statement = update(AuthSession).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
        )
        if except_id is not None:
            statement = statement.where(AuthSession.id != except_id)
        statement = statement.values(revoked_at=now).returning(AuthSession.id)
        return list((await self._session.execute(statement)).scalars())

    async def ids_for_user(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        statement = select(AuthSession.id).where(AuthSession.user_id == user_id)
        return list((await self._session.execute(statement)).scalars())


SESSION_PREFIX = "session_"
REFRESH_PREFIX = "refresh_"
EVENT_PREFIX = "event_"


def _parameters(instance: Base, prefix: str) -> dict[str, Any]:
    """``instance``'s column values, named as ``_insert_row`` names its parameters.

    No default is applied on this path, so a required column left unset (a column
    added to the model later, say) is refused here rather than written as NULL.
    """
    parameters: dict[str, Any] = {}
    for attribute in inspect(instance).mapper.column_attrs:
        column = attribute.columns[0]
        value = getattr(instance, attribute.key)
        if value is None and not column.nullable:
            raise ValueError(f"{type(instance).__name__}.{attribute.key} must be set")
        parameters[prefix + column.name] = value
    return parameters


def _insert_row(
    table: Table, prefix: str, source: FromClause, *, where: ColumnElement[bool] | None = None
) -> Insert:
    """INSERT of one ``table`` row from parameters (``prefix`` + column name), once
    for each row of ``source`` that passes ``where``: a row written only if a row it
    depends on is there."""
    values = select(
        *(bindparam(prefix + column.name, type_=column.type) for column in table.columns)
    ).select_from(source)
    if where is not None:
        values = values.where(where)
    return insert(table).from_select([column.name for column in table.columns], values)


def _open_for_active_user() -> Select[tuple[bool]]:
    # Tables, not mapped classes: a Core statement runs in one call through the
    # session, with none of the ORM's statement handling.
    users, sessions = _table(User), _table(AuthSession)
    user = (
        select(users.c.id, users.c.is_active)
        .where(users.c.id == bindparam("login_user_id", type_=users.c.id.type))
        # FOR SHARE: a deactivation or deletion holds the row FOR UPDATE until it
        # commits, and revokes the sessions it can see. Without the lock this statement
        # would read the row as it was and open a session the deactivation never sees
        # (or, for a deletion, fail its foreign key check). With it, it waits for that
        # commit and reads the row as it is then; and a deactivation that comes second
        # waits for this login to commit, and then sees its session.
        .with_for_update(read=True)
        .cte("login_user")
    )
    opened = (
        _insert_row(sessions, SESSION_PREFIX, user, where=user.c.is_active)
        .returning(sessions.c.id)
        .cte("opened_session")
    )
    return select(user.c.is_active).add_cte(
        _insert_row(_table(RefreshToken), REFRESH_PREFIX, opened).cte("first_token"),
        _insert_row(_table(AuditEvent), EVENT_PREFIX, opened).cte("login_event"),
    )


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


# Built once: a statement object caches its own cache key, so executing it again costs
# no construction and no compilation.
_OPEN_FOR_ACTIVE_USER = _open_for_active_user()
