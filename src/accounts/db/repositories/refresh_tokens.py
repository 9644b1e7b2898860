"""Queries on ``refresh_tokens``."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import RefreshToken


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, token: RefreshToken) -> RefreshToken:
        # Written with the rest of the transaction at commit: the caller gives the id,
        # and the token's session is already in the database (flushed when added).
        self._session.add(token)
        return token

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        statement = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def spend(self, token_id: uuid.UUID, now: dt.datetime) -> bool:
        """Mark a token used. Exactly one of any number of concurrent callers gets True."""
        result = await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
