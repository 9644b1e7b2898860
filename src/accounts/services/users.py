"""Users: registration, reading, listing, changing and deleting accounts.

Visibility: a user sees only themself; a superuser sees everyone. A user asking for
someone else gets ``NotFound``, never ``PermissionDenied``, so that ids do not reveal
which accounts exist.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accounts.cache import StateCache
from accounts.db.repositories.users import UserFilter
from accounts.db.unit_of_work import UnitOfWork, UnitOfWorkFactory
from accounts.domain.audit import AuditEventType
from accounts.domain.errors import (
    FieldError,
    IncorrectPassword,
    InvalidCursor,
    InvalidInput,
    LastSuperuser,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RegistrationClosed,
)
from accounts.domain.pagination import Cursor, Page, UserSort
from accounts.domain.text import has_forbidden_characters
from accounts.domain.users import (
    EMAIL_KEY_MAX_LENGTH,
    email_key,
    name_key,
    normalize_email,
    normalize_name,
)
from accounts.models import User
from accounts.models.base import utcnow
from accounts.security.passwords import PasswordHasher
from accounts.services.audit import record
from accounts.services.list_totals import LargeTotals
from accounts.services.passwords import PasswordRules
from accounts.services.principal import ClientInfo, Principal
from accounts.services.ratelimits import RateLimitPolicy

MAX_PAGE_SIZE = 100
LARGE_TOTAL = 10_000
LARGE_TOTAL_TTL_SECONDS = 5.0
MAX_QUERY_LENGTH = 254
# The version a deleted user's cache entries are told to expect: no entry has it.
DELETED_VERSION = -1


@dataclass(frozen=True, slots=True)
class UserChanges:
    """A partial update; ``None`` leaves a field as it is."""

    name: str | None = None
    email: str | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None

    @property
    def touches_privileges(self) -> bool:
        return self.is_active is not None or self.is_superuser is not None


@dataclass(frozen=True, slots=True)
class ListQuery:
    query: str | None = None
    is_active: bool | None = None
    sort: UserSort = UserSort.CREATED_AT_DESC
    cursor: str | None = None
    skip: int = 0
    limit: int = 20


def _valid(field: str, rule: Callable[[str], str], value: str) -> str:
    """Apply a domain rule, turning its ValueError into InvalidInput naming the field."""
    try:
        return rule(value)
    except ValueError as exc:
        raise InvalidInput(
            f"{field} {exc}", [FieldError(("body", field), str(exc), "value_error")]
        ) from None


def _visible(actor: User, user_id: uuid.UUID) -> bool:
    return actor.is_superuser or actor.id == user_id


class UserService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        rules: PasswordRules,
        limits: RateLimitPolicy,
        cache: StateCache,
        *,
        registration_open: bool,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._rules = rules
        self._limits = limits
        self._cache = cache
        self._registration_open = registration_open
        self._large_totals = LargeTotals(threshold=LARGE_TOTAL, ttl_seconds=LARGE_TOTAL_TTL_SECONDS)

    async def register(
        self, email: str, password: str, name: str, *, client: ClientInfo | None = None
    ) -> User:
        """Self-service sign-up.

        Raises:
            RegistrationClosed: sign-up is switched off by configuration.
            InvalidInput: a value breaks a rule.
            EmailTaken: another account has this email, in any letter case.
            RateLimited: too many registrations from this address.
        """
        if not self._registration_open:
            raise RegistrationClosed()
        await self._limits.register(client.ip if client else None)
        return await self.create(email, password, name, client=client, self_registered=True)

    async def create(
        self,
        email: str,
        password: str,
        name: str,
        *,
        is_superuser: bool = False,
        client: ClientInfo | None = None,
        self_registered: bool = False,
    ) -> User:
        """Create an account regardless of whether registration is open (admins, CLI).

        Raises:
            InvalidInput: a value breaks a rule.
            EmailTaken: another account has this email, in any letter case.
        """
        email = _valid("email", normalize_email, email)
        name = _valid("name", normalize_name, name)
        password = self._rules.check_new("password", password, email=email, name=name)
        password_hash = await self._hasher.hash(password)
        now = utcnow()
        user = User(
            email=email,
            email_key=email_key(email),
            name=name,
            name_key=name_key(name),
            password_hash=password_hash,
            is_active=True,
            is_superuser=is_superuser,
            email_verified=False,
            version=1,
            created_at=now,
            updated_at=now,
        )
        async with self._uow(write=True) as uow:
            await uow.users.add(user)
            record(
                uow,
                AuditEventType.USER_REGISTERED,
                user_id=user.id,
                actor_id=user.id if self_registered else None,
                client=client,
            )
            await uow.commit()
        return user

    async def get(self, actor: User, user_id: uuid.UUID) -> User:
        """Raises: NotFound: absent, or not the caller's to see."""
        if not _visible(actor, user_id):
            raise NotFound()
        if actor.id == user_id:
            return actor
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
        if user is None:
            raise NotFound()
        return user

    async def get_many(self, actor: User, user_ids: Sequence[uuid.UUID]) -> list[User | None]:
        """Users by id in one query, None where absent or not the caller's to see."""
        visible = [user_id for user_id in user_ids if _visible(actor, user_id)]
        async with self._uow() as uow:
            found = await uow.users.get_many(visible)
        return [found.get(user_id) if _visible(actor, user_id) else None for user_id in user_ids]

    async def list(self, actor: User, query: ListQuery) -> Page[User]:
        """A page of users for a superuser.

        Raises:
            PermissionDenied: the caller is not a superuser.
            InvalidInput: paging values out of range. InvalidCursor: a bad cursor.
        """
        if not actor.is_superuser:
            raise PermissionDenied("Only superusers can list users.")
        if query.skip < 0 or not 1 <= query.limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"skip must be >= 0 and limit 1-{MAX_PAGE_SIZE}.")
        if query.query is not None and (
            len(query.query) > MAX_QUERY_LENGTH or has_forbidden_characters(query.query)
        ):
            raise InvalidInput(
                "q is too long or holds characters that are not allowed",
                [
                    FieldError(
                        ("query", "q"),
                        f"must be at most {MAX_QUERY_LENGTH} characters",
                        "value_error",
                    )
                ],
            )
        after = _cursor_position(query.cursor, query.sort) if query.cursor else None
        filters = UserFilter(query=query.query or None, is_active=query.is_active)
        async with self._uow() as uow:
            rows = await uow.users.list(
                filters, sort=query.sort, after=after, skip=query.skip, limit=query.limit + 1
            )
            total = await self._total(uow, filters)
        items = rows[: query.limit]
        next_cursor = cursor_for(items[-1], query.sort) if len(rows) > query.limit else None
        return Page(
            items=items, total=total, skip=query.skip, limit=query.limit, next_cursor=next_cursor
        )

    async def _total(self, uow: UnitOfWork, filters: UserFilter) -> int:
        """The number of users matching ``filters``: exact while below LARGE_TOTAL,
        and for larger sets a count at most LARGE_TOTAL_TTL_SECONDS old (list_totals)."""
        return await self._large_totals.get(
            (filters.query, filters.is_active), lambda: uow.users.count(filters)
        )

    async def update(
        self,
        actor: User,
        user_id: uuid.UUID,
        changes: UserChanges,
        *,
        if_match: frozenset[int] | None = None,
        client: ClientInfo | None = None,
    ) -> User:
        """Change a user. ``if_match`` holds the versions the caller last saw, if it said.

        Raises:
            NotFound: absent, or not the caller's to see.
            PermissionDenied: a non-superuser tried to change is_active or is_superuser.
            PreconditionFailed: the user changed since the caller read it.
            LastSuperuser: the change would leave no active superuser.
            EmailTaken: the new email belongs to another account.
            InvalidInput: a value breaks a rule.
        """
        if not _visible(actor, user_id):
            raise NotFound()
        if changes.touches_privileges and not actor.is_superuser:
            raise PermissionDenied("Only superusers can change is_active or is_superuser.")
        name = _valid("name", normalize_name, changes.name) if changes.name is not None else None
        email = (
            _valid("email", normalize_email, changes.email) if changes.email is not None else None
        )
        demotes = changes.is_active is False or changes.is_superuser is False
        now = utcnow()
        async with self._uow(write=True) as uow:
            # Superusers are locked before the target, in one order, so two admins
            # demoting each other queue instead of deadlocking or both succeeding.
            superusers = await uow.users.lock_active_superusers() if demotes else []
            user = await uow.users.get_for_update(user_id)
            if user is None:
                raise NotFound()
            if if_match is not None and user.version not in if_match:
                raise PreconditionFailed()
            if demotes and user.is_superuser and user.is_active and superusers == [user.id]:
                raise LastSuperuser()
            changed = _apply(user, name=name, email=email, changes=changes)
            if changed:
                user.version += 1
                user.updated_at = now
                # Saved before any other statement, whose autoflush would write the
                # new email outside the duplicate-email guard.
                await uow.users.save(user)
                record(
                    uow,
                    AuditEventType.USER_UPDATED,
                    user_id=user.id,
                    actor_id=actor.id,
                    client=client,
                    details={"fields": changed},
                )
            if "email" in changed:
                # Links sent to the old address must not verify or reset the new one.
                await uow.one_time_tokens.invalidate_for_user(user.id, now)
            revoked = []
            if changes.is_active is False:
                revoked = await uow.auth_sessions.revoke_all_for_user(user.id, now)
            await uow.commit()
        # After the commit and before answering, so every instance sees it next request.
        await self._cache.sessions_revoked(revoked)
        if changed:
            await self._cache.user_changed(user.id, user.version)
        return user

    async def delete(
        self,
        actor: User,
        user_id: uuid.UUID,
        *,
        if_match: frozenset[int] | None = None,
        client: ClientInfo | None = None,
    ) -> None:
        """Erase an account with its sessions and tokens. ``if_match`` as in ``update``.

        Raises:
            NotFound: absent, or not the caller's to see.
            PreconditionFailed: the user changed since the caller read it.
            LastSuperuser: it is the last active superuser.
        """
        if not _visible(actor, user_id):
            raise NotFound()
        async with self._uow(write=True) as uow:
            superusers = await uow.users.lock_active_superusers()
            user = await uow.users.get_for_update(user_id)
            if user is None:
                raise NotFound()
            if if_match is not None and user.version not in if_match:
                raise PreconditionFailed()
            if user.is_superuser and user.is_active and superusers == [user.id]:
                raise LastSuperuser()
            sessions = await uow.auth_sessions.ids_for_user(user.id)
            await uow.users.delete(user.id)
            record(
                uow, AuditEventType.USER_DELETED, user_id=user_id, actor_id=actor.id, client=client
            )
            await uow.commit()
        await self._cache.sessions_revoked(sessions)
        await self._cache.user_changed(user_id, DELETED_VERSION)

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Change the caller's password and end every other session of theirs.

        Raises:
            InvalidInput: the new password breaks a rule.
            IncorrectPassword: ``current`` is not the caller's password.
        """
        self._rules.check_given("current_password", current)
        # The hash is read afresh: the principal may come from the cache, which never
        # holds password hashes.
        async with self._uow() as uow:
            user = await uow.users.get(principal.user.id)
        if user is None:
            raise NotFound()
        self._rules.check_new("new_password", new, email=user.email, name=user.name)
        if not await self._hasher.verify(user.password_hash, current):
            raise IncorrectPassword()
        new_hash = await self._hasher.hash(new)
        now = utcnow()
        async with self._uow(write=True) as uow:
            locked = await uow.users.get_for_update(user.id)
            if locked is None:
                raise NotFound()
            if locked.password_hash != user.password_hash:
                # Changed by a concurrent request since we verified: the current
                # password we checked may no longer be current.
                raise IncorrectPassword()
            locked.password_hash = new_hash
            # updated_at is part of what a client sees, and the ETag must follow it.
            locked.version += 1
            locked.updated_at = now
            revoked = await uow.auth_sessions.revoke_all_for_user(
                user.id, now, except_id=principal.session_id
            )
            await uow.one_time_tokens.invalidate_for_user(user.id, now)
            record(
                uow,
                AuditEventType.USER_PASSWORD_CHANGED,
                user_id=user.id,
                actor_id=user.id,
                client=principal.client,
            )
            await uow.commit()
        await self._cache.sessions_revoked(revoked)
        await self._cache.user_changed(locked.id, locked.version)

    async def count(self) -> int:
        async with self._uow() as uow:
            return await uow.users.count(UserFilter())


def _apply(user: User, *, name: str | None, email: str | None, changes: UserChanges) -> list[str]:
    """Apply a change set; returns the names of the fields that really changed."""
    changed: list[str] = []
    if name is not None and name != user.name:
        user.name = name
        user.name_key = name_key(name)
        changed.append("name")
    if email is not None and email != user.email:
        if email_key(email) != user.email_key:
            user.email_verified = False
        user.email = email
        user.email_key = email_key(email)
        changed.append("email")
    for field in ("is_active", "is_superuser"):
        value = getattr(changes, field)
        if value is not None and value != getattr(user, field):
            setattr(user, field, value)
            changed.append(field)
    return changed


def cursor_for(user: User, sort: UserSort) -> str:
    """The cursor that resumes a list in ``sort`` order right after ``user``."""
    key = user.created_at.isoformat() if sort.field == "created_at" else user.email_key
    return Cursor(sort=sort.value, key=key, id=user.id).encode()


def _cursor_position(token: str, sort: UserSort) -> tuple[dt.datetime | str, uuid.UUID]:
    cursor = Cursor.decode(token, sort=sort.value)
    if sort.field != "created_at":
        # Cursors are opaque but not signed: a hand-made one must still be a key
        # the database can compare with.
        if len(cursor.key) > EMAIL_KEY_MAX_LENGTH or has_forbidden_characters(cursor.key):
            raise InvalidCursor()
        return cursor.key, cursor.id
    try:
        created_at = dt.datetime.fromisoformat(cursor.key)
        if created_at.tzinfo is None:
            raise InvalidCursor()
        return created_at.astimezone(dt.UTC), cursor.id
    except (ValueError, OverflowError):
        raise InvalidCursor() from None
