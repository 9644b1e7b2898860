"""A few pooled connections kept checked out between hot-path reads (PostgreSQL).

The session check behind every authenticated request sends one statement on a
connection from SQLAlchemy's pool. Checking that connection out and back in crosses
SQLAlchemy's greenlet bridge twice and runs the pool's bookkeeping: ~100k
instructions, 12% of all of ``GET /api/v1/users/me`` (callgrind, 600 requests). So the
check keeps the connections it used and hands them out again without the pool.

What keeps this from costing the pool anything it promises:

- at most ``limit`` connections are kept: a quarter of the pool, never more than 4,
  none for a pool of 1 to 3; and none while the pool is in overflow, so connections
  are not kept idle while requests are short of them;
- each goes back to the pool ``max_age`` seconds after it left it, whether or not it
  was used since (a timer returns idle ones), so ``pool_recycle`` still applies on its
  next checkout and a quiet process holds nothing for long;
- one that the server closed (a restart, an idle timeout) is discarded, not handed
  out; one whose statement failed or was cancelled is the caller's to ``invalidate``;
- disposing the database returns all of them first.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

MAX_KEPT = 4
MAX_AGE_SECONDS = 60.0

# A connection and when it left the pool (time.monotonic()).
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
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._sweeps: set[asyncio.Task[None]] = set()
        # Connections handed out, kept or fresh: lets tests see a read that reached
        # the database without a pool checkout.
        self.handed_out = 0

    @property
    def idle(self) -> int:
        """Connections kept and not in use (checked out, as far as the pool knows)."""
        return len(self._idle)

    async def take(self) -> Taken:
        """A connection and when it left the pool: a kept one when there is one young
        and open, else a fresh checkout (raising what the pool raises)."""
        now = time.monotonic()
        while self._idle:
            pooled, since = self._idle.pop()  # the most recently used: the warmest
            if _is_closed(pooled):
                pooled.invalidate()
                continue
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
        if self._keeps(since):
            self._idle.append(taken)
            self._schedule_sweep()
        else:
            await release(pooled)

    def _keeps(self, since: float) -> bool:
        if self._closed or len(self._idle) >= self._limit:
            return False
        if time.monotonic() - since >= self._max_age:
            return False
        # In overflow, requests are short of connections: give this one back.
        overflow = getattr(self._engine.pool, "overflow", None)
        return overflow is None or int(overflow()) <= 0

    def _schedule_sweep(self) -> None:
        """Have a timer return the oldest idle connection when it reaches its age."""
        if self._sweep_timer is not None or not self._idle:
            return
        oldest = min(since for _pooled, since in self._idle)
        delay = max(0.0, oldest + self._max_age - time.monotonic())
        self._sweep_timer = asyncio.get_running_loop().call_later(delay, self._start_sweep)

    def _start_sweep(self) -> None:
        self._sweep_timer = None
        task = asyncio.get_running_loop().create_task(self._sweep(), name="kept-connections-sweep")
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _sweep(self) -> None:
        """Return every idle connection that has been out of the pool ``max_age``."""
        now = time.monotonic()
        expired = [taken for taken in self._idle if now - taken[1] >= self._max_age]
        self._idle = [taken for taken in self._idle if now - taken[1] < self._max_age]
        for pooled, _since in expired:
            await release(pooled)
        if not self._closed:
            self._schedule_sweep()

    async def close(self) -> None:
        """Return every kept connection to the pool; keep none from now on."""
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        for task in list(self._sweeps):
            task.cancel()
        await asyncio.gather(*self._sweeps, return_exceptions=True)
        idle, self._idle = self._idle, []
        errors: list[BaseException] = []
        for pooled, _since in idle:
            try:
                await release(pooled)
            except Exception as exc:  # return the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]


def _is_closed(pooled: PoolProxiedConnection) -> bool:
    driver: Any = pooled.driver_connection
    return driver is None or bool(driver.is_closed())


async def release(pooled: Any) -> None:
    # Checking a connection in resets it through the async adapter, which must run
    # inside SQLAlchemy's greenlet bridge.
    await greenlet_spawn(pooled.close)
