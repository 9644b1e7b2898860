"""LargeTotals: exact below the threshold, reused above it, recounted by one caller."""

from __future__ import annotations

import asyncio

import pytest

from accounts.services.list_totals import LargeTotals

THRESHOLD = 100
TTL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counter:
    """A count that returns ``value`` and remembers how often it was called; while
    ``gate`` is set, each call sets ``entered`` and waits for the gate to open."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        return self.value


def totals(clock: Clock) -> LargeTotals:
    return LargeTotals(threshold=THRESHOLD, ttl_seconds=TTL, clock=clock)


async def stale_total() -> tuple[LargeTotals, Counter]:
    """Totals holding a large count of THRESHOLD for "all", now just gone stale."""
    clock = Clock()
    large_totals, count = totals(clock), Counter(THRESHOLD)
    assert await large_totals.get("all", count) == THRESHOLD
    clock.now += TTL
    return large_totals, count


async def test_a_total_below_the_threshold_is_counted_every_time() -> None:
    large_totals, count = totals(Clock()), Counter(THRESHOLD - 1)

    assert [await large_totals.get("all", count) for _ in range(3)] == [99, 99, 99]
    assert count.calls == 3


async def test_a_large_total_is_reused_until_it_is_stale_and_then_counted_again() -> None:
    clock = Clock()
    large_totals, count = totals(clock), Counter(THRESHOLD)

    assert await large_totals.get("all", count) == THRESHOLD
    count.value = THRESHOLD + 5
    clock.now += TTL - 0.1
    assert await large_totals.get("all", count) == THRESHOLD
    assert count.calls == 1

    clock.now += 0.1
    assert await large_totals.get("all", count) == THRESHOLD + 5
    assert count.calls == 2


async def test_each_key_has_a_total_of_its_own() -> None:
    large_totals = totals(Clock())
    await large_totals.get("all", Counter(500))

    assert await large_totals.get("active", Counter(400)) == 400
    assert await large_totals.get("all", Counter(0)) == 500


async def test_while_a_stale_total_is_recounted_other_callers_get_the_last_one() -> None:
    large_totals, count = await stale_total()
    count.value, count.gate = THRESHOLD + 7, asyncio.Event()

    recount = asyncio.create_task(large_totals.get("all", count))
    await count.entered.wait()  # the recount has started and waits at the gate
    # Bounded, so that a caller that waits for the recount fails the test, not hangs it.
    async with asyncio.timeout(10):
        others = [await large_totals.get("all", count) for _ in range(5)]

    assert others == [THRESHOLD] * 5
    assert count.calls == 2
    count.gate.set()
    assert await recount == THRESHOLD + 7
    assert await large_totals.get("all", count) == THRESHOLD + 7
    assert count.calls == 2


async def test_a_failed_recount_is_retried_by_the_next_caller() -> None:
    large_totals, _ = await stale_total()

    async def failing() -> int:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        await large_totals.get("all", failing)
    retry = Counter(THRESHOLD + 1)
    assert await large_totals.get("all", retry) == THRESHOLD + 1
    assert retry.calls == 1


async def test_a_cancelled_recount_is_retried_by_the_next_caller() -> None:
    large_totals, count = await stale_total()
    count.gate = asyncio.Event()

    recount = asyncio.create_task(large_totals.get("all", count))
    await count.entered.wait()
    recount.cancel()
    with pytest.raises(asyncio.CancelledError):
        await recount

    count.gate.set()
    assert await large_totals.get("all", count) == THRESHOLD
    assert count.calls == 3


async def test_a_total_that_falls_below_the_threshold_is_exact_again() -> None:
    large_totals, count = await stale_total()
    count.value = THRESHOLD - 1
    assert await large_totals.get("all", count) == THRESHOLD - 1

    count.value = THRESHOLD - 2
    assert await large_totals.get("all", count) == THRESHOLD - 2
    assert count.calls == 3


async def test_the_number_of_totals_kept_is_bounded() -> None:
    large_totals = LargeTotals(threshold=1, ttl_seconds=TTL, maxsize=2, clock=Clock())
    for key in ("a", "b", "c"):
        await large_totals.get(key, Counter(10))

    count = Counter(20)
    assert await large_totals.get("a", count) == 20  # "a" was evicted, so counted again
    assert await large_totals.get("c", count) == 10
