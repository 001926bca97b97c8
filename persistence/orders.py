"""Orders and the codes they hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from domain.orders import OrderStatus, PaymentMethod
from persistence.queries import queries
from persistence.types import Db

Q = queries("orders")


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: int
    channel_id: int
    product_id: int
    idempotency_key: str
    input_hash: str
    quantity: int
    unit_price: Decimal
    total: Decimal
    payment: PaymentMethod
    status: OrderStatus
    pool_id: int | None
    sale_transaction_id: int | None
    buyer: dict[str, Any]
    created_at: datetime
    paid_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> OrderRecord:
        buyer = row["buyer"]
        return cls(
            id=row["id"],
            channel_id=row["channel_id"],
            product_id=row["product_id"],
            idempotency_key=row["idempotency_key"],
            input_hash=row["input_hash"],
            quantity=row["quantity"],
            unit_price=row["unit_price"],
            total=row["total"],
            payment=PaymentMethod(row["payment"]),
            status=OrderStatus(row["status"]),
            pool_id=row["pool_id"],
            sale_transaction_id=row["sale_transaction_id"],
            buyer=json.loads(buyer) if isinstance(buyer, str) else dict(buyer),
            created_at=row["created_at"],
            paid_at=row["paid_at"],
        )


@dataclass(frozen=True, slots=True)
class OrderCodeRecord:
    id: int
    last4: str
    status: str
    expires_at: datetime | None


class DuplicateOrder(Exception):
    """The channel placed an order with this idempotency key already."""


async def insert(
    db: Db,
    *,
    channel_id: int,
    product_id: int,
    idempotency_key: str,
    input_hash: str,
    quantity: int,
    unit_price: Decimal,
    total: Decimal,
    payment: PaymentMethod,
    status: OrderStatus,
    pool_id: int | None,
    sale_transaction_id: int | None,
    buyer: dict[str, Any],
) -> OrderRecord:
    """Raises DuplicateOrder when the key is taken (also by a concurrent, committed order)."""
    row = await db.fetchrow(
        Q["insert"],
        channel_id,
        product_id,
        idempotency_key,
        input_hash,
        quantity,
        unit_price,
        total,
        payment.value,
        status.value,
        pool_id,
        sale_transaction_id,
        json.dumps(buyer),
    )
    if row is None:
        raise DuplicateOrder(idempotency_key)
    return OrderRecord.from_row(row)


async def by_key(db: Db, channel_id: int, idempotency_key: str) -> OrderRecord | None:
    row = await db.fetchrow(Q["by_key"], channel_id, idempotency_key)
    return OrderRecord.from_row(row) if row else None


async def attach_codes(db: Db, order_id: int, code_ids: list[int]) -> None:
    await db.execute(Q["attach_codes"], order_id, code_ids)


async def record_events(
    db: Db, code_ids: list[int], kind: str, order_id: int, channel_id: int, actor: str
) -> None:
    await db.execute(Q["record_events"], code_ids, kind, order_id, channel_id, actor)


async def get_in_subtree(db: Db, order_id: int, ancestor_path: str) -> OrderRecord | None:
    row = await db.fetchrow(Q["get_in_subtree"], order_id, ancestor_path)
    return OrderRecord.from_row(row) if row else None


async def page(
    db: Db,
    ancestor_path: str,
    before_id: int,
    status: OrderStatus | None,
    product_id: int | None,
    limit: int,
) -> list[OrderRecord]:
    rows = await db.fetch(
        Q["page"], ancestor_path, before_id, status.value if status else None, product_id, limit
    )
    return [OrderRecord.from_row(r) for r in rows]


async def codes_of(db: Db, order_id: int) -> list[OrderCodeRecord]:
    rows = await db.fetch(Q["codes_of"], order_id)
    return [OrderCodeRecord(r["id"], r["last4"], r["status"], r["expires_at"]) for r in rows]


async def code_ids_of(db: Db, order_id: int) -> list[int]:
    return [r["code_id"] for r in await db.fetch(Q["code_ids_of"], order_id)]
