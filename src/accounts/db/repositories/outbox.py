"""Queries on ``outbox_emails``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import OutboxEmail


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: OutboxEmail) -> OutboxEmail:
        self._session.add(message)
        await self._session.flush()
        return message

    async def due_ids(self, now: dt.datetime, limit: int) -> Sequence[uuid.UUID]:
        statement = (
            select(OutboxEmail.id)
            .where(
                OutboxEmail.sent_at.is_(None),
                OutboxEmail.failed_at.is_(None),
                OutboxEmail.next_attempt_at <= now,
                or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now),
            )
            .order_by(OutboxEmail.next_attempt_at)
            .limit(limit)
        )
        return list((await self._session.execute(statement)).scalars())

    async def claim(self, message_id: uuid.UUID, now: dt.datetime, until: dt.datetime) -> bool:
        """Lease a message for sending; False if another dispatcher holds it or it is done."""
        result = await self._session.execute(
            update(OutboxEmail)
            .where(
                OutboxEmail.id == message_id,
                OutboxEmail.sent_at.is_(None),
                OutboxEmail.failed_at.is_(None),
                or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now),
            )
            .values(claimed_until=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, message_id: uuid.UUID) -> OutboxEmail | None:
        return await self._session.get(OutboxEmail, message_id)

    async def pending_count(self) -> int:

        statement = select(func.count()).where(
            OutboxEmail.sent_at.is_(None), OutboxEmail.failed_at.is_(None)
        )
        return int((await self._session.execute(statement)).scalar_one())
