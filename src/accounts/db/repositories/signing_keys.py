"""Queries on ``signing_keys``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import SigningKey


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def all(self) -> Sequence[SigningKey]:
        statement = select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)
        return list((await self._session.execute(statement)).scalars())

    async def retire_active(self, now: dt.datetime) -> int:
        result = await self._session.execute(
            update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def delete_retired_before(self, cutoff: dt.datetime) -> int:
        result = await self._session.execute(
            delete(SigningKey).where(
                SigningKey.retired_at.is_not(None), SigningKey.retired_at < cutoff
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def add(self, key: SigningKey) -> SigningKey:
        self._session.add(key)
        await self._session.flush()
        return key
