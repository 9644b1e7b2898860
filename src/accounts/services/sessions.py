"""A user's own sessions: listing them and ending one."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from accounts.cache import StateCache
from accounts.db.unit_of_work import UnitOfWorkFactory
from accounts.domain.audit import AuditEventType
from accounts.domain.errors import NotFound
from accounts.models.base import utcnow
from accounts.services.audit import record
from accounts.services.principal import Principal


@dataclass(frozen=True, slots=True)
class SessionView:
    id: uuid.UUID
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    user_agent: str | None
    ip: str | None
    current: bool


class SessionService:
    def __init__(self, uow: UnitOfWorkFactory, cache: StateCache) -> None:
        self._uow = uow
        self._cache = cache

    async def list(self, principal: Principal) -> list[SessionView]:
        """The caller's live sessions, newest first, the one making the call marked."""
        async with self._uow() as uow:
            rows = await uow.auth_sessions.list_live_for_user(principal.user.id, utcnow())
        return [
            SessionView(
                id=row.id,
                created_at=row.created_at,
                last_used_at=row.last_used_at,
                expires_at=row.expires_at,
                user_agent=row.user_agent,
                ip=row.ip,
                current=row.id == principal.session_id,
            )
            for row in rows
        ]

    async def revoke(self, principal: Principal, session_id: uuid.UUID) -> None:
        """End one of the caller's sessions (the current one included).

        Raises:
            NotFound: not a live session of the caller's.
        """
        now = utcnow()
        async with self._uow(write=True) as uow:
            session = await uow.auth_sessions.get(session_id)
            if session is None or session.user_id != principal.user.id:
                raise NotFound()
            if not await uow.auth_sessions.revoke(session_id, now):
                raise NotFound()
            record(
                uow,
                AuditEventType.SESSION_REVOKED,
                user_id=principal.user.id,
                actor_id=principal.user.id,
                client=principal.client,
                details={"session_id": str(session_id), "reason": "revoked"},
            )
            await uow.commit()
        await self._cache.sessions_revoked([session_id])
