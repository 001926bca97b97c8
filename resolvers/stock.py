"""Live stock: the ``stockChanged`` subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from actors.registry import STOCK_TOPIC
from domain.catalog import sees_off_shelf
from persistence.catalog import StockRecord
from schema import ids
from schema.catalog import StockLevel
from schema.context import Info, require_viewer
from schema.errors import bad_request


async def stock_changed(info: Info, product_id: str | None) -> AsyncGenerator[StockLevel, None]:
    """Stock levels as they change, of the products the caller's channel can see.

    The pool actors publish at most about ten levels a second per product, each the
    latest, so a slow subscriber is never flooded with stale numbers.
    """
    viewer = require_viewer(info)
    wanted = None
    if product_id is not None:
        wanted = ids.decode("Product", product_id)
        if wanted is None:
            raise bad_request("`productId` is not a product id.")
    async with info.context.services.events.subscribe(STOCK_TOPIC) as queue:
        while True:
            event = await queue.get()
            if wanted is not None and event["product_id"] != wanted:
                continue
            if not event["on_shelf"] and not sees_off_shelf(viewer):
                continue
            yield StockLevel(
                record=StockRecord(
                    event["product_id"],
                    event["available"],
                    event["reserved"],
                    event["sold"],
                    event["frozen"],
                )
            )
