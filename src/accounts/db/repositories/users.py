"""Queries on ``users``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, delete, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from accounts.domain.errors import EmailTaken
from accounts.domain.pagination import UserSort
from accounts.models import User

EMAIL_UNIQUE_INDEX = "email_key"
_S = TypeVar("_S", bound=Select[Any])


@dataclass(frozen=True, slots=True)
class UserFilter:
    query: str | None = None
    is_active: bool | None = None


def _is_duplicate_email(exc: IntegrityError) -> bool:
    return EMAIL_UNIQUE_INDEX in str(exc.orig)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self._session.get(User, user_id)

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
        """Users by id, in one query; absent ids are simply missing from the result."""
        if not user_ids:
            return {}
        result = await self._session.execute(select(User).where(User.id.in_(set(user_ids))))
        return {user.id: user for user in result.scalars()}

    async def get_for_update(self, user_id: uuid.UUID) -> User | None:
        """Load and row-lock a user, so concurrent changes to it queue behind this one."""
        statement = select(User).where(User.id == user_id).with_for_update()
        result = await self._session.execute(statement.execution_options(populate_existing=True))
        return result.scalar_one_or_none()

    async def replace_password_hash(self, user_id: uuid.UUID, old: str, new: str) -> bool:
        """Store ``new`` in place of ``old``, a hash of the same password made at another
        cost; not if the password was changed meanwhile (then it is no longer ``old``)."""
        result = await self._session.execute(
            update(User)
            .where(User.id == user_id, User.password_hash == old)
            .values(password_hash=new)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get_by_email_key(self, email_key: str) -> User | None:
        result = await self._session.execute(select(User).where(User.email_key == email_key))
        return result.scalar_one_or_none()

    async def add(self, user: User) -> User:
        """Insert a user; a duplicate email, even one racing in from elsewhere, is EmailTaken."""
        # The unique index decides, not a prior SELECT: two requests can both see the
        # email free. The savepoint keeps the outer transaction usable afterwards.
        try:
            async with self._session.begin_nested():
                self._session.add(user)
        except IntegrityError as exc:
            if _is_duplicate_email(exc):
                raise EmailTaken() from None
            raise
        return user

    async def save(self, user: User) -> User:
        """Write pending changes to a loaded user; an email that is taken is EmailTaken.

        Call it before issuing other statements in the same unit of work: their
        autoflush would write the changes without this guard.
        """
        try:
            await self._session.flush()
        except IntegrityError as exc:
            if _is_duplicate_email(exc):
                raise EmailTaken() from None
            raise
        return user

    async def delete(self, user_id: uuid.UUID) -> bool:
        """Delete a user; their sessions and refresh tokens go with them (ON DELETE CASCADE)."""
        result = await self._session.execute(delete(User).where(User.id == user_id))
        self._session.expunge_all()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def lock_active_superusers(self) -> list[uuid.UUID]:
        """Ids of the active superusers, row-locked so that two demotions cannot interleave."""
        statement = (
            select(User.id)
            .where(User.is_superuser.is_(True), User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
        return list((await self._session.execute(statement)).scalars())

    async def count(self, filters: UserFilter) -> int:
        statement = _filtered(select(func.count()).select_from(User), filters)
        return int((await self._session.execute(statement)).scalar_one())

    async def list(
        self,
        filters: UserFilter,
        *,
        sort: UserSort,
        after: tuple[dt.datetime | str, uuid.UUID] | None,
        skip: int,
        limit: int,
    ) -> Sequence[User]:
        """One page in ``sort`` order, starting after the keyset position ``after``."""
        key = User.created_at if sort.field == "created_at" else User.email_key
        statement = _filtered(select(User), filters)
        if after is not None:
            position = tuple_(key, User.id)
            bound = tuple_(*after)
            statement = statement.where(position < bound if sort.descending else position > bound)
        if sort.descending:
            statement = statement.order_by(key.desc(), User.id.desc())
        else:
            statement = statement.order_by(key.asc(), User.id.asc())
        statement = statement.offset(skip).limit(limit)
        return list((await self._session.execute(statement)).scalars())


def _filtered(statement: _S, filters: UserFilter) -> _S:
    conditions: list[ColumnElement[bool]] = []
    if filters.is_active is not None:
        conditions.append(User.is_active.is_(filters.is_active))
    if filters.query:
        needle = filters.query.lower()
        conditions.append(
            or_(
                User.email_key.contains(needle, autoescape=True),
                User.name_key.contains(needle, autoescape=True),
            )
        )
    return statement.where(*conditions) if conditions else statement
