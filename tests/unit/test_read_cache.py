"""The process's read cache: an entry read before a change is never served after it."""

from __future__ import annotations

import asyncio

from persistence.read_cache import ReadCache


async def test_a_second_load_is_served_from_memory() -> None:
    cache = ReadCache()
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        return reads

    assert await cache.load("k", read) == 1
    assert await cache.load("k", read) == 1
    assert reads == 1


async def test_invalidation_makes_the_next_load_read_again() -> None:
    cache = ReadCache()
    value = "old"

    async def read() -> str:
        return value

    assert await cache.load("k", read) == "old"
    value = "new"
    cache.invalidate()
    assert await cache.load("k", read) == "new"


async def test_a_read_that_raced_a_change_is_not_kept() -> None:
    # Given a read that started before a change and finishes after it
    cache = ReadCache()
    started, release = asyncio.Event(), asyncio.Event()
    value = "before"

    async def slow_read() -> str:
        seen = value
        started.set()
        await release.wait()
        return seen

    pending = asyncio.create_task(cache.load("k", slow_read))
    await started.wait()
    value = "after"
    cache.invalidate()
    release.set()
    assert await pending == "before"

    # Then the next load reads again instead of serving what the racing read saw
    async def read() -> str:
        return value

    assert await cache.load("k", read) == "after"


async def test_entries_expire_after_the_time_limit() -> None:
    cache = ReadCache(ttl=0.05)
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        return reads

    await cache.load("k", read)
    await asyncio.sleep(0.06)
    assert await cache.load("k", read) == 2
