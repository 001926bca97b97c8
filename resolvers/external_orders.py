"""placeOrder with EXTERNAL payment: codes reserved, the order waiting for its payment.

The reservation is made through the pool's actor under a reference unique to this
attempt (two concurrent calls with one idempotency key must not release each other's
codes), for ``order_payment_ttl_seconds``. The order is then written AWAITING_PAYMENT
with the reserved codes, the reservation's expiry and a payment reference, in one
transaction. When that insert loses to a twin with the same key, the reservation is
released and the caller answers with the twin's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from actors.messages import Reserved
from domain.access import Principal
from domain.money import cents
from domain.orders import QueuedDelivery, sale_reference
from domain.pricing import PriceBelowCost, resolve
from persistence import orders, pools, pricing
from persistence.catalog import ProductRecord
from persistence.orders import Awaiting, DuplicateOrder, OrderRecord
from resolvers.orders import price_below_cost
from schema.context import Info
from schema.errors import ErrorCode, UserError, user_error

# Calls with one channel and idempotency key placing at once in this process, in turn:
# a reservation is answered before its order commits, so a twin that ran beside it could
# find the stock taken and the order not yet there. (Across processes the unique key
# still makes one order; a twin there may answer OUT_OF_STOCK and its retry the order.)
_placing: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}


@contextlib.asynccontextmanager
async def _one_at_a_time(channel_id: int, key: str) -> AsyncIterator[None]:
    slot = (channel_id, key)
    lock, users = _placing.get(slot, (asyncio.Lock(), 0))
    _placing[slot] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = _placing[slot]
        if users == 1:
            del _placing[slot]
        else:
            _placing[slot] = (lock, users - 1)


def payment_reference() -> str:
    """An opaque reference to pay under: 80 random bits, readable over the phone."""
    return "QY" + secrets.token_hex(10).upper()


async def reserve_for_payment(
    info: Info,
    viewer: Principal,
    product: ProductRecord,
    quantity: int,
    key: str,
    digest: str,
    request: dict[str, Any],
    delivery: list[QueuedDelivery],
) -> OrderRecord | DuplicateOrder | UserError:
    async with _one_at_a_time(viewer.channel_id, key):
        if await orders.by_key(info.context.services.db, viewer.channel_id, key) is not None:
            return DuplicateOrder(key)
        return await _reserve(info, viewer, product, quantity, key, digest, request, delivery)


async def _reserve(
    info: Info,
    viewer: Principal,
    product: ProductRecord,
    quantity: int,
    key: str,
    digest: str,
    request: dict[str, Any],
    delivery: list[QueuedDelivery],
) -> OrderRecord | DuplicateOrder | UserError:
    services = info.context.services
    path = await pricing.price_path(services.db, viewer.channel_path, product.id)
    if path is None:
        return user_error(ErrorCode.PRODUCT_NOT_VISIBLE, "This product is not for sale to you.")
    try:
        chain = resolve(path.cost, path.base_price, path.levels)
    except PriceBelowCost:
        return price_below_cost()
    unit_price = chain.price
    total = cents(unit_price * quantity)
    ref = f"{sale_reference(viewer.channel_id, key)}#{secrets.token_hex(6)}"
    ttl = timedelta(seconds=services.settings.order_payment_ttl_seconds)

    candidates = [p for p in await pools.by_product(services.db, product.id) if p.available]
    for pool in candidates:
        reserved = await services.pools.reserve(pool.id, ref, quantity, ttl)
        if not isinstance(reserved, Reserved):
            continue
        try:
            async with services.db.acquire() as conn, conn.transaction():
                order = await orders.insert_awaiting(
                    conn,
                    channel_id=viewer.channel_id,
                    product_id=product.id,
                    idempotency_key=key,
                    input_hash=digest,
                    quantity=quantity,
                    unit_price=unit_price,
                    total=total,
                    pool_id=pool.id,
                    buyer=request["buyer"] or {},
                    awaiting=Awaiting(payment_reference(), ref, reserved.expires_at),
                    delivery=delivery,
                )
                held = list(reserved.code_ids)
                await orders.attach_codes(conn, order.id, held)
                await orders.record_events(
                    conn, held, "RESERVED", order.id, viewer.channel_id, viewer.actor
                )
        except Exception as error:
            # Nothing was written: give the codes back at once rather than at expiry.
            await services.pools.release(pool.id, ref)
            if isinstance(error, DuplicateOrder):
                return error
            raise
        return order
    return user_error(ErrorCode.OUT_OF_STOCK, "Not enough codes in stock.", "quantity")
