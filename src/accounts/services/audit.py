"""The audit log: recording events inside a use case's unit of work, and reading them.

``record`` stages an event in the caller's unit of work, so the event is committed
with the change it describes or rolled back with it. Events carry who did it
(``actor_id``), to whom (``user_id``), from where (``ip``, ``user_agent``) and at most a
few non-secret details (names of changed fields, a reason): never a password or token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from accounts.db.unit_of_work import UnitOfWork, UnitOfWorkFactory
from accounts.domain.audit import AuditEventType
from accounts.domain.errors import FieldError, InvalidCursor, InvalidInput, PermissionDenied
from accounts.models import AuditEvent, User
from accounts.models.base import new_id, utcnow
from accounts.services.principal import ClientInfo

MAX_PAGE_SIZE = 100


def printable(value: str | None, length: int) -> str | None:
    """A client-supplied string fit to store: printable characters only, bounded."""
    if not value:
        return None
    return "".join(char for char in value if char.isprintable())[:length] or None


def new_event(
    type_: AuditEventType,
    *,
    user_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    client: ClientInfo | None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """An event with every column set, ready to be written by any means."""
    client = client or ClientInfo()
    return AuditEvent(
        id=new_id(),
        type=type_.value,
        user_id=user_id,
        actor_id=actor_id,
        user_agent=printable(client.user_agent, 512),
        ip=printable(client.ip, 64),
        details=details,
        created_at=utcnow(),
    )


def record(
    uow: UnitOfWork,
    type_: AuditEventType,
    *,
    user_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    client: ClientInfo | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Stage an event in ``uow``: committed with the change it describes, or not at all."""
    uow.audit.add(
        new_event(type_, user_id=user_id, actor_id=actor_id, client=client, details=details)
    )


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditEvent]
    next_cursor: str | None


class AuditService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def list(
        self,
        actor: User,
        *,
        user_id: uuid.UUID | None = None,
        type_: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> AuditPage:
        """Events newest first, for superusers.

        Raises:
            PermissionDenied: the caller is not a superuser.
            InvalidInput: an unknown event type or a limit out of range.
            InvalidCursor: a malformed cursor.
        """
        if not actor.is_superuser:
            raise PermissionDenied("Only superusers can read the audit log.")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(
                f"limit must be 1-{MAX_PAGE_SIZE}",
                [FieldError(("query", "limit"), f"must be 1-{MAX_PAGE_SIZE}", "value_error")],
            )
        if type_ is not None and type_ not in {item.value for item in AuditEventType}:
            raise InvalidInput(
                "unknown event type",
                [FieldError(("query", "type"), "is not a known event type", "value_error")],
            )
        before = _decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.audit.list(
                user_id=user_id, type_=type_, before=before, limit=limit + 1
            )
        items = list(rows[:limit])
        next_cursor = items[-1].id.hex if len(rows) > limit else None
        return AuditPage(items=items, next_cursor=next_cursor)


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(hex=cursor)
    except ValueError:
        raise InvalidCursor() from None
