"""Queries on ``one_time_tokens``."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import OneTimeToken


class OneTimeTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def stage(self, token: OneTimeToken) -> None:
        """Add a token; it is written with the rest of the unit of work, or not at all."""
        self._session.add(token)

    async def get_by_hash(self, token_hash: str, purpose: str) -> OneTimeToken | None:
        statement = select(OneTimeToken).where(
            OneTimeToken.token_hash == token_hash, OneTimeToken.purpose == purpose
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def spend(self, token_id: uuid.UUID, now: dt.datetime) -> bool:
        """Mark a token used; exactly one of any number of concurrent callers gets True."""
        result = await self._session.execute(
            update(OneTimeToken)
            .where(OneTimeToken.id == token_id, OneTimeToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def invalidate_for_user(self, user_id: uuid.UUID, now: dt.datetime) -> int:
        """Spend every outstanding token of a user (their email or password changed)."""
        result = await self._session.execute(
            update(OneTimeToken)
            .where(OneTimeToken.user_id == user_id, OneTimeToken.used_at.is_(None))
            .values(used_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
