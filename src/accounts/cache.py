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

import redis.asyncio as redis
from redis.exceptions import RedisError

from accounts.breaker import RedisBreaker
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


def _encode_user(user: User) -> str:
    state: dict[str, object] = {field: getattr(user, field) for field in USER_FIELDS}
    state["version"] = user.version
    state["created_at"] = user.created_at.isoformat()
    state["updated_at"] = user.updated_at.isoformat()
    return json.dumps(state, separators=(",", ":"))


def _decode_user(user_id: uuid.UUID, raw: str) -> User:
    state = json.loads(raw)
    # A detached User without the password hash: the hash is never cached, and the
    # one use case that needs it (changing the password) reads it from the database.
    return User(
        id=user_id,
        password_hash="",
        version=int(state["version"]),
        created_at=dt.datetime.fromisoformat(state["created_at"]),
        updated_at=dt.datetime.fromisoformat(state["updated_at"]),
        **{field: state[field] for field in USER_FIELDS},
    )


class RedisStateCache:
    def __init__(
        self, client: redis.Redis, breaker: RedisBreaker, *, tombstone_ttl_seconds: int
    ) -> None:
        self._redis = client
        self._breaker = breaker
        self._tombstone_ttl = tombstone_ttl_seconds

    async def get(self, session_id: uuid.UUID, user_id: uuid.UUID) -> User | Revoked | None:
        if self._breaker.is_open:
            return None
        try:
            live, revoked, state, version = await self._redis.mget(
                f"{PREFIX}s:{session_id}",
                f"{PREFIX}r:{session_id}",
                f"{PREFIX}u:{user_id}",
                f"{PREFIX}v:{user_id}",
            )
        except (RedisError, OSError) as error:
            self._breaker.tripped("session cache", error)
            return None
        if revoked is not None:
            return REVOKED
        if live != str(user_id) or state is None or version is None:
            return None
        user = _decode_user(user_id, str(state))
        return user if str(user.version) == version else None

    async def put(self, session_id: uuid.UUID, user: User) -> None:
        if self._breaker.is_open:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"{PREFIX}s:{session_id}", str(user.id), ex=STATE_TTL_SECONDS)
                pipe.set(f"{PREFIX}u:{user.id}", _encode_user(user), ex=STATE_TTL_SECONDS)
                # Only if absent: a writer's newer version must never be overwritten.
                pipe.set(f"{PREFIX}v:{user.id}", str(user.version), ex=VERSION_TTL_SECONDS, nx=True)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._breaker.tripped("session cache", error)

    async def sessions_revoked(self, session_ids: Iterable[uuid.UUID]) -> None:
        ids = list(session_ids)
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.set(f"{PREFIX}r:{session_id}", "1", ex=self._tombstone_ttl)
                    pipe.delete(f"{PREFIX}s:{session_id}")
                await pipe.execute()
        except (RedisError, OSError) as error:
            # Other instances read Redis too; if it is away for them as well they go
            # to the database. Say so loudly: this is the one degraded case.
            self._breaker.tripped("session revocation", error)

    async def user_changed(self, user_id: uuid.UUID, version: int) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"{PREFIX}v:{user_id}", str(version), ex=VERSION_TTL_SECONDS)
                pipe.delete(f"{PREFIX}u:{user_id}")
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._breaker.tripped("user cache invalidation", error)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
    )
