"""The expiry pass: unpaid orders past their expiry become EXPIRED and give back codes.

The pool registry's sweeper returns expired reservations to stock by itself; this pass
keeps the orders in step. For each due order it releases the reservation through the
pool's actor (a no-op when the sweeper was first), then marks the order EXPIRED if it is
still waiting (and detaches its codes), records the RELEASED codes and tells subscribers.
A payment that arrives later is still taken: see ``resolvers.order_payments``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg

from actors.registry import PoolRegistry
from persistence import orders
from persistence.events import EventHub
from resolvers.orders import TOPIC_ORDER_UPDATED
from resolvers.periodic import Periodic

log = logging.getLogger(__name__)

BATCH = 100
ACTOR = "expiry"


class OrderExpiry(Periodic):
    name = "order-expiry"
    batch = BATCH

    def __init__(
        self, db: asyncpg.Pool[Any], pools: PoolRegistry, events: EventHub, interval: float
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.pools = pools
        self.events = events

    async def run_once(self) -> int:
        """Expire what is due now; returns how many orders were due."""
        due = await orders.due_to_expire(self.db, datetime.now(UTC), BATCH)
        for order in due:
            released: tuple[int, ...] = ()
            if order.pool_id is not None and order.reservation_ref is not None:
                # Codes first: whoever sees the order EXPIRED sees its codes back in stock.
                changed = await self.pools.release(order.pool_id, order.reservation_ref)
                released = changed.code_ids
            expired = await orders.expire(self.db, order.id)
            if expired is None:
                continue  # a payment came first
            if released:
                await orders.record_events(
                    self.db, list(released), "RELEASED", order.id, order.channel_id, ACTOR
                )
            await self.events.publish(TOPIC_ORDER_UPDATED, {"id": order.id, "path": expired[1]})
        return len(due)
