"""A few pooled connections kept checked out between hot-path reads (PostgreSQL).

The session check behind every authenticated request sends one statement on a
connection from SQLAlchemy's pool. Checking that connection out and back in crosses
SQLAlchemy's greenlet bridge twice and runs the pool's bookkeeping: ~100k
instructions, 12% of all of ``GET /api/v1/users/me`` (callgrind, 600 requests). So the
check keeps the connections it used, up to ``limit`` of them and each for at most
``max_age`` seconds, and hands them out again without the pool.

What the pool still does: it opens every connection (and its 503 when exhausted or
unreachable), it gets each one back after ``max_age`` (so ``pool_recycle`` and the
like still apply on its next checkout) and when the database is disposed, and it
discards a connection the caller found broken (``invalidate``). ``limit`` stays a
small share of the pool, so transactions are never starved by connections kept idle.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

# Connections kept at most: a quarter of the pool, and never more than this.
MAX_KEPT = 4
MAX_AGE_SECONDS = 60.0

Taken = tuple[PoolProxiedConnection, float]


def kept_limit(pool_size: int) -> int:
    """How many connections a pool of ``pool_size`` lends to be kept: a pool of 1 to
    3 keeps none, so that a small pool is never held idle."""
    return min(MAX_KEPT, pool_size // 4)


class KeptConnections:
    def __init__(self, engine: AsyncEngine, limit: int, max_age: float = MAX_AGE_SECONDS) -> None:
        self._engine = engine
        self._limit = limit
        self._max_age = max_age
        self._idle: list[Taken] = []
        self._closed = False
        # Connections handed out, kept or fresh: lets tests see a read that reached
        # the database without a pool checkout.
        self.handed_out = 0

    @property
    def idle(self) -> int:
        """Connections kept and not in use (checked out, as far as the pool knows)."""
        return len(self._idle)

    async def take(self) -> Taken:
        """A connection and when it left the pool: a kept one when there is one young
        enough, else a fresh checkout (raising what the pool raises)."""
        now = time.monotonic()
        while self._idle:
            pooled, since = self._idle.pop()  # the most recently used: the warmest
            if now - since < self._max_age:
                self.handed_out += 1
                return pooled, since
            await release(pooled)
        pooled = await self._engine.raw_connection()
        self.handed_out += 1
        return pooled, now

    async def give_back(self, taken: Taken) -> None:
        """Keep a connection the caller used without error, or return it to the pool.
        (One whose state is in doubt must be ``invalidate``d instead.)"""
        pooled, since = taken
        young = time.monotonic() - since < self._max_age
        if young and not self._closed and len(self._idle) < self._limit:
            self._idle.append(taken)
        else:
            await release(pooled)

    async def close(self) -> None:
        """Return every kept connection to the pool; keep none from now on."""
        self._closed = True
        idle, self._idle = self._idle, []
        for pooled, _since in idle:
            await release(pooled)


async def release(pooled: Any) -> None:
    # Checking a connection in resets it through the async adapter, which must run
    # inside SQLAlchemy's greenlet bridge.
    await greenlet_spawn(pooled.close)
