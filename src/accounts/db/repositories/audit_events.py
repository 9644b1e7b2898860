"""Queries on ``audit_events`` (insert and read; never update or delete)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import AuditEvent


class AuditEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, event: AuditEvent) -> None:
        """Stage an event; it is written with the rest of the unit of work, or not at all."""
        self._session.add(event)

    async def list(
        self,
        *,
        user_id: uuid.UUID | None,
        type_: str | None,
        before: uuid.UUID | None,
        limit: int,
    ) -> Sequence[AuditEvent]:
        """Newest first; ``before`` is the id of the last event of the previous page."""
        statement = select(AuditEvent)
        if user_id is not None:
            statement = statement.where(AuditEvent.user_id == user_id)
        if type_ is not None:
            statement = statement.where(AuditEvent.type == type_)
        if before is not None:
            statement = statement.where(AuditEvent.id < before)
        statement = statement.order_by(AuditEvent.id.desc()).limit(limit)
        return list((await self._session.execute(statement)).scalars())
