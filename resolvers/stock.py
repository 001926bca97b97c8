"""Live stock: the ``stockChanged`` subscription."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from actors.registry import STOCK_TOPIC
from domain.access import Principal, in_subtree
from domain.catalog import sees_product
from persistence import catalog
from persistence.catalog import StockRecord
from persistence.types import Db
from resolvers.commerce import TOPIC_PRODUCT_VISIBILITY
from schema import ids
from schema.catalog import StockLevel
from schema.context import RECHECK_SECONDS, Info, require_viewer
from schema.errors import bad_request

# How long a subscriber trusts what it learnt about a product being hidden on its path.
# Changes are also announced (TOPIC_PRODUCT_VISIBILITY), so this only bounds the damage
# of an announcement lost with a Valkey connection.
HIDDEN_TTL_SECONDS = 60.0


class _HiddenCache:
    """Whether each product is hidden on one subscriber's path, asked once per product."""

    def __init__(self, db: Db, viewer: Principal) -> None:
        self._db = db
        self._viewer = viewer
        self._hidden: dict[int, tuple[bool, float]] = {}

    def forget(self, changes: asyncio.Queue[dict[str, Any]]) -> None:
        """Drop what changes announced since the last call made stale.

        Announcements and stock levels arrive through one Valkey connection in the order
        they were published, so a change committed before a level was published is in
        ``changes`` by the time that level is read.
        """
        if changes.full():  # some were dropped: trust nothing
            self._hidden.clear()
        while not changes.empty():
            change = changes.get_nowait()
            if in_subtree(self._viewer.channel_path, change["path"]):
                for product_id in change["product_ids"]:
                    self._hidden.pop(product_id, None)

    async def hidden(self, product_id: int) -> bool:
        now = time.monotonic()
        known = self._hidden.get(product_id)
        if known is not None and now - known[1] < HIDDEN_TTL_SECONDS:
            return known[0]
        hidden = await catalog.hidden_on_path(self._db, product_id, self._viewer.channel_path)
        self._hidden[product_id] = (hidden, now)
        return hidden


async def stock_changed(info: Info, product_id: str | None) -> AsyncGenerator[StockLevel, None]:
    """Stock levels as they change, of the products the caller's channel can see.

    The pool actors publish at most about ten levels a second per product, each the
    latest, so a slow subscriber is never flooded with stale numbers. A product off shelf
    or hidden on the caller's path is never sent; whether it is hidden is asked once per
    product and subscription and asked again when a change on the path is announced.
    """
    viewer = require_viewer(info)
    wanted = None
    if product_id is not None:
        wanted = ids.decode("Product", product_id)
        if wanted is None:
            raise bad_request("`productId` is not a product id.")
    services = info.context.services
    cache = _HiddenCache(services.db, viewer)
    async with (
        services.events.subscribe(STOCK_TOPIC) as queue,
        services.events.subscribe(TOPIC_PRODUCT_VISIBILITY) as changes,
    ):
        while True:
            event = await queue.get()
            cache.forget(changes)
            if wanted is not None and event["product_id"] != wanted:
                continue
            if not viewer.is_platform and not sees_product(
                viewer,
                on_shelf=event["on_shelf"],
                hidden_on_path=event["on_shelf"] and await cache.hidden(event["product_id"]),
            ):
                continue
            await info.context.recheck(max_age=RECHECK_SECONDS)
            yield StockLevel(
                record=StockRecord(
                    event["product_id"],
                    event["available"],
                    event["reserved"],
                    event["sold"],
                    event["frozen"],
                )
            )
