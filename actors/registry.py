"""The pool registry: the asyncio face of the PoolActors.

It starts an actor on a pool's first use, routes commands to it, passivates idle actors
(at most ``pool_max_actors`` threads live at once) and restarts one that died. Per pool,
one batch is in flight at a time: commands that arrive meanwhile wait and then travel
together as the next batch, which the actor takes itself as soon as it is free, so the
cost per code falls as load rises. A sweeper returns expired reservations to stock, and
stock changes are published, coalesced per product.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pykka

from actors.bridge import Reply
from actors.database_loop import DatabaseLoop
from actors.messages import (
    Batch,
    Changed,
    Command,
    Commit,
    Committed,
    Freeze,
    NotReserved,
    OutOfStock,
    PoolSnapshot,
    Refresh,
    Release,
    ReleaseExpired,
    Reserve,
    Reserved,
    Sell,
    Snapshot,
    Sold,
    Unfreeze,
    Void,
)
from actors.pool_actor import PoolActor
from persistence import code_states
from persistence.code_states import MoveEvent, SaleWork
from persistence.events import EventHub
from settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

STOCK_TOPIC = "stock"
MAX_ATTEMPTS = 3


class PoolUnavailable(Exception):
    """The pool's actor failed repeatedly; the command was not carried out."""


class _PoolClient:
    """The mailbox of one pool: what waits, what is in flight, which actor.

    Commands arrive on the event loop; the actor takes each next batch itself, in its own
    thread, as soon as it has answered the last one, so the pool never waits for the loop
    to get round to sending it. The lock guards what both sides touch.
    """

    def __init__(self, registry: PoolRegistry, pool_id: int) -> None:
        self.registry = registry
        self.pool_id = pool_id
        self.actor: pykka.ActorRef[PoolActor] | None = None
        self._lock = threading.Lock()
        self.pending: list[Command] = []
        self.in_flight: Batch | None = None
        self.attempts = 0
        self.last_used = time.monotonic()

    @property
    def idle(self) -> bool:
        with self._lock:
            return self.in_flight is None and not self.pending

    def submit(self, command: Command) -> None:
        with self._lock:
            self.pending.append(command)
            self.last_used = time.monotonic()
            if self.in_flight is not None:
                return
            batch = self._next_batch()
        self._send(batch)

    def _take(self) -> Batch | None:
        """In the actor's thread, once it answered a batch: the commands that came meanwhile."""
        with self._lock:
            self.last_used = time.monotonic()
            if not self.pending:
                self.in_flight = None
                return None
            return self._next_batch()

    def _next_batch(self) -> Batch:
        """What waits, as the batch in flight (the lock held, something pending)."""
        batch = Batch(tuple(self.pending), retry=False, following=self._take)
        self.pending = []
        self.in_flight = batch
        self.attempts = 1
        return batch

    def _send(self, batch: Batch) -> None:
        if self.actor is None:
            self.actor = self.registry._start_actor(self.pool_id)
        try:
            self.actor.tell(batch)
        except pykka.ActorDeadError:
            self.actor = self.registry._start_actor(self.pool_id)
            self.actor.tell(batch)

    def actor_exited(self, actor_urn: str) -> None:
        if self.actor is None or self.actor.actor_urn != actor_urn:
            return
        self.actor = None
        with self._lock:
            batch = self.in_flight
            if batch is None:
                return
            unanswered = [c for c in batch.commands if not c.reply.future.done()]
            if unanswered and self.attempts >= MAX_ATTEMPTS:
                error = PoolUnavailable(f"pool {self.pool_id} failed {self.attempts} times")
                for command in unanswered:
                    command.reply.future.set_exception(error)
                unanswered = []
            if unanswered:
                # Its actor died in the middle of it: a new one carries it out again.
                self.attempts += 1
                batch = Batch(tuple(unanswered), retry=True, following=self._take)
                self.in_flight = batch
            elif self.pending:
                batch = self._next_batch()
            else:
                self.in_flight = None
                return
        self._send(batch)

    def stop_actor(self) -> pykka.ActorRef[PoolActor] | None:
        actor, self.actor = self.actor, None
        return actor


class PoolRegistry:
    def __init__(self, db: asyncpg.Pool[Any], events: EventHub, settings: Settings) -> None:
        self.db = db
        self.events = events
        self.settings = settings
        self._clients: OrderedDict[int, _PoolClient] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stock_due: dict[int, asyncio.TimerHandle] = {}
        self._stock_sent: dict[int, float] = {}
        assert settings.database_url, "the actors open their own connections"
        self._database = DatabaseLoop(settings.database_url, settings.pool_db_connections)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._database.start()
        self._tasks = [
            asyncio.create_task(self._sweep_forever(), name="reservation-sweeper"),
            asyncio.create_task(self._passivate_forever(), name="pool-passivator"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for handle in self._stock_due.values():
            handle.cancel()
        actors = [a for c in self._clients.values() if (a := c.stop_actor())]
        self._clients.clear()
        # Stopping waits for each actor's current batch, whose answers need this loop:
        # wait in a thread, not here.
        await asyncio.to_thread(_stop_all, actors)
        await self._database.stop()

    # The Python API -----------------------------------------------------------------

    async def reserve(
        self, pool_id: int, ref: str, quantity: int, ttl: timedelta | None = None
    ) -> Reserved | OutOfStock:
        if quantity < 1:
            raise ValueError("reserve at least one code")
        ttl = ttl or timedelta(seconds=self.settings.reservation_ttl_seconds)
        return await self._ask(pool_id, lambda r: Reserve(ref, quantity, ttl, r))

    async def sell(
        self, pool_id: int, ref: str, quantity: int, work: SaleWork
    ) -> Sold | OutOfStock:
        """Sell codes straight away, with ``work`` written in the same transaction.

        Concurrent sales of one pool share one transaction (one commit), each in its own
        savepoint. Raises what ``work`` raised, with nothing of that sale written.
        """
        if quantity < 1:
            raise ValueError("sell at least one code")
        return await self._ask(pool_id, lambda r: Sell(ref, quantity, work, r))

    async def commit(self, pool_id: int, ref: str) -> Committed | NotReserved:
        return await self._ask(pool_id, lambda r: Commit(ref, r))

    async def release(self, pool_id: int, ref: str) -> Changed:
        return await self._ask(pool_id, lambda r: Release(ref, r))

    async def release_expired(self, pool_id: int) -> Changed:
        return await self._ask(pool_id, ReleaseExpired)

    # With ``event``, each code moved gets that event in the statement that moves it.

    async def freeze(
        self, pool_id: int, code_ids: list[int], event: MoveEvent | None = None
    ) -> Changed:
        return await self._ask(pool_id, lambda r: Freeze(tuple(code_ids), r, event))

    async def unfreeze(
        self, pool_id: int, code_ids: list[int], event: MoveEvent | None = None
    ) -> Changed:
        return await self._ask(pool_id, lambda r: Unfreeze(tuple(code_ids), r, event))

    async def void(
        self, pool_id: int, code_ids: list[int], event: MoveEvent | None = None
    ) -> Changed:
        return await self._ask(pool_id, lambda r: Void(tuple(code_ids), r, event))

    async def snapshot(self, pool_id: int) -> PoolSnapshot:
        return await self._ask(pool_id, Snapshot)

    async def stock_added(self, pool_id: int) -> None:
        """Codes were imported into the pool: its actor re-reads its counters."""
        await self._ask(pool_id, Refresh)

    def actor(self, pool_id: int) -> pykka.ActorRef[PoolActor] | None:
        """The live actor of a pool, if any (for operations and tests)."""
        client = self._clients.get(pool_id)
        return client.actor if client else None

    @property
    def live_actors(self) -> int:
        return sum(1 for c in self._clients.values() if c.actor is not None)

    # Internals ----------------------------------------------------------------------

    async def _ask(self, pool_id: int, make: Callable[[Reply[T]], Command]) -> T:
        reply: Reply[T] = Reply.new()
        client = self._clients.get(pool_id)
        if client is None:
            client = self._clients[pool_id] = _PoolClient(self, pool_id)
        self._clients.move_to_end(pool_id)
        client.submit(make(reply))
        return await reply.future

    def _start_actor(self, pool_id: int) -> pykka.ActorRef[PoolActor]:
        assert self._loop is not None, "start() the registry first"
        self._evict_beyond_limit()
        return PoolActor.start(
            pool_id,
            self._database.db,
            self._database.loop,
            self._loop,
            self.settings.pool_window_size,
            self._changed_from_thread,
            lambda urn: self._exited_from_thread(pool_id, urn),
        )

    def _evict_beyond_limit(self) -> None:
        """Keep the number of actor threads bounded: passivate the least recently used."""
        excess = self.live_actors - self.settings.pool_max_actors + 1
        for pool_id, client in list(self._clients.items()):
            if excess <= 0:
                break
            if client.actor is not None and client.idle:
                self._passivate(pool_id)
                excess -= 1

    def _passivate(self, pool_id: int) -> None:
        client = self._clients.pop(pool_id)
        actor = client.stop_actor()
        if actor is not None:
            actor.stop(block=False)

    def _exited_from_thread(self, pool_id: int, actor_urn: str) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._exited, pool_id, actor_urn)

    def _exited(self, pool_id: int, actor_urn: str) -> None:
        client = self._clients.get(pool_id)
        if client is not None:
            client.actor_exited(actor_urn)

    def _changed_from_thread(self, pool_id: int, product_id: int) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._schedule_stock, product_id)

    def _schedule_stock(self, product_id: int) -> None:
        """At most one stock message per product per ``stock_interval``, the latest."""
        if product_id in self._stock_due:
            return
        assert self._loop is not None
        interval = self.settings.stock_publish_interval
        wait = max(0.0, self._stock_sent.get(product_id, 0.0) + interval - time.monotonic())
        self._stock_due[product_id] = self._loop.call_later(
            wait, lambda: asyncio.ensure_future(self._publish_stock(product_id))
        )

    async def _publish_stock(self, product_id: int) -> None:
        self._stock_sent[product_id] = time.monotonic()
        self._stock_due.pop(product_id, None)
        try:
            row = await code_states.product_stock(self.db, product_id)
            if row is not None:
                await self.events.publish(STOCK_TOPIC, dict(row))
        except Exception as error:
            log.warning("stock of product %s not published: %r", product_id, error)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reservation_sweep_seconds)
            try:
                expired = await code_states.expired_pools(self.db, datetime.now(UTC), 100)
                await asyncio.gather(*(self.release_expired(p) for p in expired))
            except Exception as error:
                log.warning("reservation sweep failed: %r", error)

    async def _passivate_forever(self) -> None:
        idle_after = self.settings.pool_idle_seconds
        while True:
            await asyncio.sleep(max(idle_after / 2, 0.05))
            now = time.monotonic()
            for pool_id, client in list(self._clients.items()):
                if client.idle and now - client.last_used > idle_after:
                    self._passivate(pool_id)


def _stop_all(actors: list[pykka.ActorRef[PoolActor]]) -> None:
    for actor in actors:
        with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
            actor.stop(block=True, timeout=10)
