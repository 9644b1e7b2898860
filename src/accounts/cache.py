"""The shared cache of session and user state, so a warm authenticated request needs no
database round trip.

Keys (in Redis, each prefixed with ``accounts:``):

    s:{session}  the session is live (short TTL)          written by readers on a miss
    u:{user}     the user's public state, with its version  written by readers on a miss
    v:{user}     the user's current version                 written by writers after commit
    r:{session}  tombstone: the session was revoked         written by writers after commit

A lookup hits only when ``s`` and ``u`` are present, ``r`` is absent, and ``u``'s
version equals ``v``. So a reader that read the database just before a revocation
and cached what it saw cannot resurrect the session (the tombstone wins), nor an old
user state (the version no longer matches). Losing Redis's data (FLUSHALL) only
causes misses, which go to the database, the source of truth. Without Redis there is
no shared cache (``NullStateCache``): an in-process one could not hear about a
revocation made by another instance.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from accounts.models import User

PREFIX = "accounts:"
STATE_TTL_SECONDS = 60
VERSION_TTL_SECONDS = 3600
USER_FIELDS = (
    "email",
    "email_key",
    "name",
    "name_key",
    "is_active",
    "is_superuser",
    "email_verified",
)


@dataclass(frozen=True, slots=True)
class Revoked:
    """The cache knows the session was revoked."""


REVOKED = Revoked()


class StateCache(Protocol):
    async def get(self, session_id: uuid.UUID, user_id: uuid.UUID) -> User | Revoked | None:
        """The cached user for a live session, REVOKED, or None on a miss."""

    async def put(self, session_id: uuid.UUID, user: User) -> None: ...

    async def sessions_revoked(self, session_ids: Iterable[uuid.UUID]) -> None: ...

    async def user_changed(self, user_id: uuid.UUID, version: int) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class NullStateCache:
    async def get(self, session_id: uuid.UUID, user_id: uuid.UUID) -> User | Revoked | None:
        return None

    async def put(self, session_id: uuid.UUID, user: User) -> None:
        return None

    async def sessions_revoked(self, session_ids: Iterable[uuid.UUID]) -> None:
        return None

    async def user_changed(self, user_id: uuid.UUID, version: int) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def encode_user(user: User) -> str:
    state: dict[str, object] = {field: getattr(user, field) for field in USER_FIELDS}
    state["version"] = user.version
    state["created_at"] = user.created_at.isoformat()
    state["updated_at"] = user.updated_at.isoformat()
    return json.dumps(state, separators=(",", ":"))


def decode_user(user_id: uuid.UUID, raw: str) -> User:
    state = json.loads(raw)
    # A detached User without the password hash: the hash is never cached, and the
    # one use case that needs it (changing the password) reads it from the database.
    return User.detached(
        id=user_id,
        password_hash="",
        version=int(state["version"]),
        created_at=dt.datetime.fromisoformat(state["created_at"]),
        updated_at=dt.datetime.fromisoformat(state["updated_at"]),
        **{field: state[field] for field in USER_FIELDS},
    )
