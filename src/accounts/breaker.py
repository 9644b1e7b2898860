"""A circuit breaker for Redis: after a failure, stop asking for a few seconds.

Without it every request would wait out a socket timeout while Redis is down.
"""

from __future__ import annotations

import time

import structlog

logger = structlog.get_logger("accounts.redis")

REDIS_RETRY_SECONDS = 5.0


class RedisBreaker:
    """Remembers that Redis failed, so that for a few seconds nobody waits on it again."""

    def __init__(self, retry_after: float = REDIS_RETRY_SECONDS) -> None:
        self._retry_after = retry_after
        self._down_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._down_until

    def tripped(self, what: str, error: BaseException) -> None:
        if not self.is_open:
            logger.warning(
                "redis unavailable; using in-process fallback", used_for=what, error=str(error)
            )
        self._down_until = time.monotonic() + self._retry_after
