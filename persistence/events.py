"""Live events between server processes: Valkey pub/sub, fanned out in each process.

Each process holds one pattern subscription and hands each message to the local
subscribers of its topic. A subscriber that falls behind loses its oldest events
rather than holding memory for ever: live views want the latest state, not history.

A message carries a list of events. News published without waiting (``publish_soon``,
one per order on the hot path) is gathered while the previous send is on the wire and
leaves as one message per topic: every process receives and decodes each message, so
a thousand orders a second must not mean a thousand messages a second to each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)

PREFIX = "quanyi:events:"
QUEUE_SIZE = 256


class EventHub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._outgoing: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self._redis.publish(PREFIX + topic, json.dumps([payload]))

    def publish_soon(self, topic: str, payload: dict[str, Any]) -> None:
        """Publish without making the caller wait: for news that follows a committed change
        (a lost message costs a live view an update, never data)."""
        self._outgoing[topic].append(payload)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_outgoing(), name="event-sender")

    async def _send_outgoing(self) -> None:
        try:
            while self._outgoing:
                outgoing, self._outgoing = self._outgoing, defaultdict(list)
                for topic, payloads in outgoing.items():
                    try:
                        await self._redis.publish(PREFIX + topic, json.dumps(payloads))
                    except Exception as error:
                        log.warning("%d events on %s lost: %r", len(payloads), topic, error)
        finally:
            self._sender = None

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[topic].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[topic].discard(queue)
            if not self._subscribers[topic]:
                del self._subscribers[topic]

    async def _run(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(PREFIX + "*")
                self._ready.set()
                async for message in pubsub.listen():
                    self._deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("event subscription lost (%s); reconnecting", error)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        topic = (channel.decode() if isinstance(channel, bytes) else channel)[len(PREFIX) :]
        queues = self._subscribers.get(topic)
        if not queues:
            return
        for payload in json.loads(message["data"]):
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(payload)
