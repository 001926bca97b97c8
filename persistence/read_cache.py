"""Reads every request repeats and few requests change, kept in the process.

Who a credential belongs to, and what a channel may buy at which price, are read by
every order but change only through the platform's own mutations. Each entry carries
the generation it was read in; any change bumps the generation in this process at
once and in the others through Valkey, so an entry read before a change is never
served after it. A read that raced a change is not stored. The time limit only bounds
the staleness a lost invalidation message could cause.

Concurrent misses of one key share one read: when an entry expires under load, every
request in flight would otherwise read it at once, each paying for the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from persistence.events import EventHub

TOPIC_INVALIDATE = "read-cache-invalidate"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Entry:
    generation: int
    expires: float
    value: Any


@dataclass(frozen=True, slots=True)
class _Reading:
    generation: int
    task: asyncio.Task[Any]


class ReadCache:
    def __init__(self, *, ttl: float = 10.0, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.generation = 0
        self._entries: dict[Hashable, _Entry] = {}
        self._reading: dict[Hashable, _Reading] = {}

    async def load(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """The value under ``key``, read with ``read`` when not held or no longer valid."""
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.generation == self.generation
            and entry.expires > time.monotonic()
        ):
            value: T = entry.value
            return value
        reading = self._reading.get(key)
        if reading is None or reading.generation != self.generation:
            # A read begun before a change is not joined: it may have seen the old rows.
            task = asyncio.ensure_future(self._read(key, read, self.generation))
            # Every caller may have gone (cancelled) by the time it fails.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            reading = self._reading[key] = _Reading(self.generation, task)
        # Shielded: one caller cancelled does not cancel the read the others wait for.
        shared: T = await asyncio.shield(reading.task)
        return shared

    async def _read(self, key: Hashable, read: Callable[[], Awaitable[T]], generation: int) -> T:
        try:
            value = await read()
        finally:
            reading = self._reading.get(key)
            if reading is not None and reading.generation == generation:
                del self._reading[key]
        if generation == self.generation:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = _Entry(generation, time.monotonic() + self.ttl, value)
        return value

    def invalidate(self) -> None:
        """Forget everything read so far (in this process)."""
        self.generation += 1
        self._entries.clear()


class SharedInvalidation:
    """Carries invalidations between the processes sharing one database."""

    def __init__(self, cache: ReadCache, events: EventHub) -> None:
        self.cache = cache
        self.events = events
        self._origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(ready), name="read-cache-invalidation")
        await ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def invalidate(self) -> None:
        """After a committed change: drop this process's entries now, the others' soon."""
        self.cache.invalidate()
        self.events.publish_soon(TOPIC_INVALIDATE, {"origin": self._origin})

    async def _listen(self, ready: asyncio.Event) -> None:
        async with self.events.subscribe(TOPIC_INVALIDATE) as queue:
            ready.set()
            while True:
                message = await queue.get()
                if message.get("origin") != self._origin:
                    self.cache.invalidate()
