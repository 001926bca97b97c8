"""Live events: what one process publishes, every process's subscribers receive, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from persistence.events import PREFIX, EventHub


@pytest.fixture
async def hubs(redis_url: str) -> AsyncIterator[tuple[EventHub, EventHub, Redis]]:
    """Two processes' hubs on one Valkey, and a raw client to watch the wire."""
    redis = Redis.from_url(redis_url)
    hubs = [EventHub(Redis.from_url(redis_url)) for _ in range(2)]
    for hub in hubs:
        await hub.start()
    try:
        yield hubs[0], hubs[1], redis
    finally:
        for hub in hubs:
            await hub.stop()
            await hub._redis.aclose()
        await redis.aclose()


async def _take(queue: asyncio.Queue[dict[str, object]], n: int) -> list[dict[str, object]]:
    return [await asyncio.wait_for(queue.get(), timeout=5) for _ in range(n)]


async def test_a_burst_of_news_reaches_every_process_in_order_in_few_messages(
    hubs: tuple[EventHub, EventHub, Redis],
) -> None:
    publisher, other, redis = hubs
    watch = redis.pubsub()
    await watch.subscribe(PREFIX + "orders")
    async with publisher.subscribe("orders") as here, other.subscribe("orders") as there:
        # When one process publishes 200 events without waiting, as 200 orders would
        for n in range(200):
            publisher.publish_soon("orders", {"n": n})

        # Then subscribers in both processes get all of them, in order
        assert [e["n"] for e in await _take(here, 200)] == list(range(200))
        assert [e["n"] for e in await _take(there, 200)] == list(range(200))

    # And they crossed the wire as a few messages, not one each
    messages = 0
    while (message := await watch.get_message(timeout=0.2)) is not None:
        if message["type"] == "message":
            messages += 1
    assert 1 <= messages < 10
    await watch.aclose()


async def test_published_and_soon_published_news_arrive_alike(
    hubs: tuple[EventHub, EventHub, Redis],
) -> None:
    publisher, other, _ = hubs
    async with other.subscribe("stock") as queue:
        await publisher.publish("stock", {"available": 3})
        publisher.publish_soon("stock", {"available": 2})
        assert await _take(queue, 2) == [{"available": 3}, {"available": 2}]


async def test_news_of_other_topics_is_not_delivered(
    hubs: tuple[EventHub, EventHub, Redis],
) -> None:
    publisher, other, _ = hubs
    async with other.subscribe("stock") as stock:
        publisher.publish_soon("orders", {"id": 1})
        publisher.publish_soon("stock", {"available": 1})
        assert await _take(stock, 1) == [{"available": 1}]
        await asyncio.sleep(0.1)
        assert stock.empty()
