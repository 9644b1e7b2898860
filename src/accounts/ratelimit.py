"""Rate limiting with the ``limits`` library (moving window).

Storage is in-process on the embedded default and Redis when ACCOUNTS_REDIS_URL is
set, so that a limit holds across every instance. When Redis does not answer, the
limiter falls back to its in-process storage for a while (see ``RedisBreaker``):
limits keep holding per instance, requests do not fail, and Redis is retried.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from accounts.breaker import RedisBreaker

logger = structlog.get_logger("accounts.ratelimit")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of counting one request against one limit."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window has room again


class RateLimiter:
    def __init__(
        self,
        *,
        enabled: bool,
        redis_url: str | None,
        breaker: RedisBreaker,
        prefix: str = "accounts-rl",
    ) -> None:
        self.enabled = enabled
        self._breaker = breaker
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        self._redis_storage: RedisStorage | None = None
        if redis_url is not None:
            # redis-py, which the project already uses (the default, coredis, is not installed).
            self._redis_storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=prefix,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            storage: Storage = self._redis_storage
            self._redis = MovingWindowRateLimiter(storage)

    @staticmethod
    def parse(limit: str) -> RateLimitItem:
        return parse(limit)

    def _strategies(self) -> list[MovingWindowRateLimiter]:
        if self._redis is not None and not self._breaker.is_open:
            return [self._redis, self._memory]
        return [self._memory]

    async def hit(self, item: RateLimitItem, *key: str) -> Verdict:
        """Count one request; the verdict says whether it was within the limit."""
        if not self.enabled:
            return Verdict(True, item.amount, item.amount, 0)
        for strategy in self._strategies():
            try:
                allowed = await strategy.hit(item, *key)
                stats = await strategy.get_window_stats(item, *key)
            except StorageError as error:
                self._breaker.tripped("rate limits", error)
                continue
            reset_after = max(0, math.ceil(stats.reset_time - time.time()))
            return Verdict(allowed, item.amount, max(0, stats.remaining), reset_after)
        raise AssertionError("the in-process limiter cannot fail")

    async def exceeded(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Without counting: the verdict if the limit is already used up, else None."""
        if not self.enabled:
            return None
        for strategy in self._strategies():
            try:
                if await strategy.test(item, *key):
                    return None
                stats = await strategy.get_window_stats(item, *key)
            except StorageError as error:
                self._breaker.tripped("rate limits", error)
                continue
            reset_after = max(1, math.ceil(stats.reset_time - time.time()))
            return Verdict(False, item.amount, 0, reset_after)
        return None

    async def close(self) -> None:
        """Close the Redis connections (``limits`` has no public way to, so reach its client)."""
        if self._redis_storage is None:
            return
        client: Any = getattr(self._redis_storage.bridge, "storage", None)
        if client is not None:
            await client.aclose()

    async def clear(self, item: RateLimitItem, *key: str) -> None:
        for strategy in (self._memory, self._redis):
            if strategy is None:
                continue
            try:
                await strategy.clear(item, *key)
            except StorageError as error:
                self._breaker.tripped("rate limits", error)
