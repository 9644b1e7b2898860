"""Totals of large lists: counted at most every few seconds, and by one caller at a time.

Counting is a scan of every matching row, so at a million users an exact count would
cost more than the page itself on every request. Past a threshold a total a few seconds
old is as useful as an exact one (it changes as you read it anyway), so it is reused.
When it goes stale, the first caller to notice counts again while the others are
answered with the previous count: otherwise every request arriving during the recount
would start a scan of its own, and each would wait for all of them (at 1M users on
PostgreSQL, list pages' p99 read 1.2 s that way, every few seconds).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from cachetools import LRUCache


@dataclass
class _Count:
    value: int
    counted_at: float
    recounting: bool = False


class LargeTotals:
    """The number of rows in a set, per key: exact below ``threshold`` rows, and from
    there on reused for ``ttl_seconds``, then recounted by one caller at a time."""

    def __init__(
        self,
        *,
        threshold: int,
        ttl_seconds: float,
        maxsize: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._ttl = ttl_seconds
        self._clock = clock
        # Bounded: keys are filters, and a search string makes one per query typed.
        self._counts: LRUCache[Hashable, _Count] = LRUCache(maxsize=maxsize)

    async def get(self, key: Hashable, count: Callable[[], Awaitable[int]]) -> int:
        """The total for ``key``, calling ``count`` when there is none fresh enough."""
        known = self._counts.get(key)
        if known is not None and (known.recounting or self._clock() - known.counted_at < self._ttl):
            return known.value
        if known is not None:
            known.recounting = True
        try:
            value = await count()
        finally:
            # Also when the count fails or its request is cancelled: the next caller
            # then counts again, and none is left waiting on a recount that never ends.
            if known is not None:
                known.recounting = False
        if value >= self._threshold:
            self._counts[key] = _Count(value, self._clock())
        else:
            self._counts.pop(key, None)
        return value
