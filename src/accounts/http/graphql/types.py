"""GraphQL object and input types."""

from __future__ import annotations

import datetime as dt

import strawberry

from accounts.models import User as UserRow
from accounts.services.auth import TokenPair as TokenPairValue


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
