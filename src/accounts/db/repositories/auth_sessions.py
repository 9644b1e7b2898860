"""Queries on ``sessions``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import AuthSession


class AuthSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, auth_session: AuthSession) -> AuthSession:
        self._session.add(auth_session)
        # Written now: the models have no relationship() for the unit of work to order
        # inserts by, so rows that point at this session must find it already there.
        await self._session.flush()
        return auth_session

    async def get(self, session_id: uuid.UUID) -> AuthSession | None:
        return await self._session.get(AuthSession, session_id)

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
