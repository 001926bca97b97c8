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


async def test_concurrent_misses_of_one_key_share_one_read() -> None:
    # Given many requests that miss the same key at once
    cache = ReadCache()
    reads = 0
    release = asyncio.Event()

    async def read() -> int:
        nonlocal reads
        reads += 1
        await release.wait()
        return reads

    # When they all load it while the first read is still running
    loads = [asyncio.create_task(cache.load("k", read)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()

    # Then the database is read once and every request gets that value
    assert await asyncio.gather(*loads) == [1] * 50
    assert reads == 1


async def test_a_load_after_a_change_does_not_join_a_read_begun_before_it() -> None:
    # Given a read in flight that began before a change
    cache = ReadCache()
    started, release = asyncio.Event(), asyncio.Event()
    value = "before"

    async def read() -> str:
        seen = value
        started.set()
        await release.wait()
        return seen

    early = asyncio.create_task(cache.load("k", read))
    await started.wait()
    value = "after"
    cache.invalidate()

    # When a request loads the key after the change
    late = asyncio.create_task(cache.load("k", read))
    await asyncio.sleep(0)
    release.set()

    # Then it reads again and sees the change; the early one keeps what it read
    assert await late == "after"
    assert await early == "before"


async def test_a_cancelled_caller_does_not_cancel_the_shared_read() -> None:
    cache = ReadCache()
    release = asyncio.Event()

    async def read() -> str:
        await release.wait()
        return "value"

    first = asyncio.create_task(cache.load("k", read))
    second = asyncio.create_task(cache.load("k", read))
    await asyncio.sleep(0)
    first.cancel()
    release.set()

    assert await second == "value"
    assert await cache.load("k", read) == "value"


async def test_a_failed_read_fails_its_waiters_and_is_tried_again_next_time() -> None:
    cache = ReadCache()
    attempts = 0

    async def read() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts == 1:
            raise ConnectionError("database away")
        return "value"

    results = await asyncio.gather(
        cache.load("k", read), cache.load("k", read), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert await cache.load("k", read) == "value"
    assert attempts == 2
