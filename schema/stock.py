"""Subscriptions to stock levels."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers.stock import stock_changed
from schema.catalog import StockLevel
from schema.context import Info


@strawberry.type
class StockSubscription:
    @strawberry.subscription(
        description="Stock of the products the caller can see, as it changes; all of them "
        "when `productId` is omitted. At most about ten updates a second per product."
    )
    async def stock_changed(
        self, info: Info, product_id: strawberry.ID | None = None
    ) -> AsyncGenerator[StockLevel, None]:
        async for level in stock_changed(info, product_id):
            yield level
