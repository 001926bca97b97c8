"""Purchases from suppliers for REALTIME orders.

A purchase is written, with its order and the buyer's payment, before the supplier is
called; its ref comes from the order, so calling again after a timeout, a crash or a
failure (补单) asks the supplier for the same purchase and never buys twice. A process
holds a purchase it works on by a lease; one whose lease ran out is taken up again.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from domain.orders import QueuedDelivery
from persistence.orders import DuplicateOrder, OrderRecord
from persistence.queries import queries
from persistence.types import Db

Q = queries("supplier_orders")


class SupplierOrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    FULFILLED = "FULFILLED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class SupplierOrderRecord:
    order_id: int
    supplier_id: int
    ref: str
    sku: str
    quantity: int
    status: SupplierOrderStatus
    round: int
    attempts: int
    last_error: str | None
    leased_until: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> SupplierOrderRecord:
        return cls(
            order_id=row["order_id"],
            supplier_id=row["supplier_id"],
            ref=row["ref"],
            sku=row["sku"],
            quantity=row["quantity"],
            status=SupplierOrderStatus(row["status"]),
            round=row["round"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            leased_until=row["leased_until"],
        )


def supplier_ref(order_id: int) -> str:
    """The supplier's ref of an order's purchase: the same for every try."""
    return f"quanyi-order-{order_id}"


async def insert_order(
    conn: Any,
    *,
    channel_id: int,
    product_id: int,
    idempotency_key: str,
    input_hash: str,
    quantity: int,
    unit_price: Decimal,
    total: Decimal,
    buyer: dict[str, Any],
    delivery: Sequence[QueuedDelivery],
) -> OrderRecord:
    """A REALTIME order waiting for its codes; raises DuplicateOrder when the key is taken."""
    row = await conn.fetchrow(
        Q["insert_order"],
        channel_id,
        product_id,
        idempotency_key,
        input_hash,
        quantity,
        unit_price,
        total,
        json.dumps(buyer),
        json.dumps([d.as_json() for d in delivery]),
    )
    if row is None:
        raise DuplicateOrder(idempotency_key)
    return OrderRecord.from_row(row)


async def charge(
    conn: Any, order_id: int, sale_transaction_id: int, unit_price: Decimal, total: Decimal
) -> OrderRecord:
    row = await conn.fetchrow(Q["charge"], order_id, sale_transaction_id, unit_price, total)
    return OrderRecord.from_row(row)


async def insert(
    conn: Any,
    *,
    order_id: int,
    supplier_id: int,
    sku: str,
    quantity: int,
    lease_seconds: float,
) -> None:
    await conn.execute(
        Q["insert"], order_id, supplier_id, supplier_ref(order_id), sku, quantity, lease_seconds
    )


async def get(db: Db, order_id: int) -> SupplierOrderRecord | None:
    row = await db.fetchrow(Q["get"], order_id)
    return SupplierOrderRecord.from_row(row) if row else None


async def lock(conn: Any, order_id: int) -> SupplierOrderRecord | None:
    row = await conn.fetchrow(Q["lock"], order_id)
    return SupplierOrderRecord.from_row(row) if row else None


async def again(conn: Any, order_id: int, lease_seconds: float) -> SupplierOrderRecord:
    return SupplierOrderRecord.from_row(await conn.fetchrow(Q["again"], order_id, lease_seconds))


async def finish(
    conn: Any, order_id: int, status: SupplierOrderStatus, attempts: int, error: str | None
) -> None:
    await conn.execute(Q["finish"], order_id, status.value, attempts, error)


async def take_abandoned(db: Db, lease_seconds: float, limit: int) -> list[int]:
    return [r["order_id"] for r in await db.fetch(Q["take_abandoned"], lease_seconds, limit)]
