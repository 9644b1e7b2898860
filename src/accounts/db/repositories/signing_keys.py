"""Queries on ``signing_keys``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import SigningKey


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def all(self) -> Sequence[SigningKey]:
        statement = select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)
        return list((await self._session.execute(statement)).scalars())

    async def add(self, key: SigningKey) -> SigningKey:
        self._session.add(key)
        await self._session.flush()
        return key
