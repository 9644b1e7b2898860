"""GraphQL object and input types."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
import strawberry.scalars

from accounts.models import AuditEvent as AuditEventRow
from accounts.models import User as UserRow
from accounts.services.auth import TokenPair as TokenPairValue
from accounts.services.sessions import SessionView


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    name: str
    is_active: bool
    is_superuser: bool
    email_verified: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            name=row.name,
            is_active=row.is_active,
            is_superuser=row.is_superuser,
            email_verified=row.email_verified,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class TokenPair:
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str

    @classmethod
    def of(cls, pair: TokenPairValue) -> TokenPair:
        return cls(
            access_token=pair.access_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
            refresh_token=pair.refresh_token,
        )


@strawberry.input
class UpdateUserInput:
    """A partial update: a field left out (or null) stays as it is."""

    name: str | None = None
    email: str | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None


@strawberry.type
class Session:
    id: strawberry.ID
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    user_agent: str | None
    ip: str | None
    current: bool

    @classmethod
    def of(cls, view: SessionView) -> Session:
        return cls(
            id=strawberry.ID(str(view.id)),
            created_at=view.created_at,
            last_used_at=view.last_used_at,
            expires_at=view.expires_at,
            user_agent=view.user_agent,
            ip=view.ip,
            current=view.current,
        )


@strawberry.type
class AuditEvent:
    id: strawberry.ID
    type: str
    actor_id: strawberry.ID | None
    user_id: strawberry.ID | None
    ip: str | None
    user_agent: str | None
    created_at: dt.datetime
    details: strawberry.scalars.JSON | None

    @classmethod
    def of(cls, row: AuditEventRow) -> AuditEvent:
        details: Any = row.details
        return cls(
            id=strawberry.ID(str(row.id)),
            type=row.type,
            actor_id=strawberry.ID(str(row.actor_id)) if row.actor_id else None,
            user_id=strawberry.ID(str(row.user_id)) if row.user_id else None,
            ip=row.ip,
            user_agent=row.user_agent,
            created_at=row.created_at,
            details=details,
        )


@strawberry.type
class AuditEventPage:
    items: list[AuditEvent]
    next_cursor: str | None
