"""The shared cache in Redis: ``StateCache`` as ``accounts.cache`` describes it.

A module of its own so that redis-py (~5 MiB of memory per process) is imported only
when ``ACCOUNTS_REDIS_URL`` is set: bootstrap imports this lazily.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import redis.asyncio as redis
from redis.exceptions import RedisError

from accounts.breaker import RedisBreaker
from accounts.cache import (
    PREFIX,
    REVOKED,
    STATE_TTL_SECONDS,
    VERSION_TTL_SECONDS,
    Revoked,
    decode_user,
    encode_user,
)
from accounts.models import User


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
        user = decode_user(user_id, str(state))
        return user if str(user.version) == version else None

    async def put(self, session_id: uuid.UUID, user: User) -> None:
        if self._breaker.is_open:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"{PREFIX}s:{session_id}", str(user.id), ex=STATE_TTL_SECONDS)
                pipe.set(f"{PREFIX}u:{user.id}", encode_user(user), ex=STATE_TTL_SECONDS)
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
