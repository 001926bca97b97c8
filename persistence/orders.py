"""Orders and the codes they hold."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from domain.orders import OrderStatus, PaymentMethod, QueuedDelivery
from persistence import deliveries
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
    payment_reference: str | None = None
    reservation_ref: str | None = None
    expires_at: datetime | None = None
    status_reason: str | None = None
    refund_transaction_id: int | None = None
    delivery: tuple[QueuedDelivery, ...] = ()

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
            buyer=dict(_json(buyer)),
            created_at=row["created_at"],
            paid_at=row["paid_at"],
            payment_reference=row["payment_reference"],
            reservation_ref=row["reservation_ref"],
            expires_at=row["expires_at"],
            status_reason=row["status_reason"],
            refund_transaction_id=row["refund_transaction_id"],
            delivery=tuple(QueuedDelivery.from_json(d) for d in _json(row["delivery"])),
        )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def queue_deliveries(conn: Any, paid: Sequence[OrderRecord]) -> bool:
    """Queue the deliveries the orders asked for, in the transaction that pays them;
    whether there were any (the outbox is then worth waking after the commit)."""
    requested = [
        deliveries.Requested(order.id, order.channel_id, d.method.value, d.target)
        for order in paid
        for d in order.delivery
    ]
    await deliveries.enqueue(conn, requested)
    return bool(requested)


@dataclass(frozen=True, slots=True)
class OrderCodeRecord:
    id: int
    last4: str
    status: str
    expires_at: datetime | None


class DuplicateOrder(Exception):
    """The channel placed an order with this idempotency key already."""


async def by_key(db: Db, channel_id: int, idempotency_key: str) -> OrderRecord | None:
    row = await db.fetchrow(Q["by_key"], channel_id, idempotency_key)
    return OrderRecord.from_row(row) if row else None


async def detach_released(db: Db, code_ids: list[int]) -> None:
    await db.execute(Q["detach_released"], code_ids)


async def attach_codes(db: Db, order_id: int, code_ids: list[int]) -> None:
    """In the caller's transaction, as the codes are sold or reserved for the order."""
    await detach_released(db, code_ids)
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


# --- external payment, expiry, cancel and refund ------------------------------------------


@dataclass(frozen=True, slots=True)
class Awaiting:
    """What an order waiting for an external payment holds."""

    payment_reference: str
    reservation_ref: str
    expires_at: datetime


async def insert_awaiting(
    db: Db,
    *,
    channel_id: int,
    product_id: int,
    idempotency_key: str,
    input_hash: str,
    quantity: int,
    unit_price: Decimal,
    total: Decimal,
    pool_id: int,
    buyer: dict[str, Any],
    awaiting: Awaiting,
    delivery: Sequence[QueuedDelivery],
) -> OrderRecord:
    """An EXTERNAL order holding a reservation; raises DuplicateOrder when the key is taken."""
    row = await db.fetchrow(
        Q["insert_awaiting"],
        channel_id,
        product_id,
        idempotency_key,
        input_hash,
        quantity,
        unit_price,
        total,
        pool_id,
        json.dumps(buyer),
        awaiting.payment_reference,
        awaiting.reservation_ref,
        awaiting.expires_at,
        json.dumps([d.as_json() for d in delivery]),
    )
    if row is None:
        raise DuplicateOrder(idempotency_key)
    return OrderRecord.from_row(row)


async def by_payment_reference(db: Db, reference: str) -> OrderRecord | None:
    row = await db.fetchrow(Q["by_payment_reference"], reference)
    return OrderRecord.from_row(row) if row else None


async def get(db: Db, order_id: int) -> OrderRecord | None:
    row = await db.fetchrow(Q["get"], order_id)
    return OrderRecord.from_row(row) if row else None


async def lock(db: Db, order_id: int) -> OrderRecord | None:
    """The order, locked until the end of the caller's transaction."""
    row = await db.fetchrow(Q["lock"], order_id)
    return OrderRecord.from_row(row) if row else None


async def channel_path(db: Db, channel_id: int) -> str:
    path: str | None = await db.fetchval(Q["channel_path"], channel_id)
    assert path is not None, "an order's channel exists"
    return path


async def attach_missing_codes(db: Db, order_id: int, code_ids: list[int]) -> None:
    """Attach codes to the order, leaving those it holds already."""
    await detach_released(db, code_ids)
    await db.execute(Q["attach_missing_codes"], order_id, code_ids)


async def detach_codes(db: Db, order_id: int) -> None:
    """An order that gave back its reservation holds no codes."""
    await db.execute(Q["detach_codes"], order_id)


async def mark_paid(db: Db, order_id: int, pool_id: int, sale_transaction_id: int) -> OrderRecord:
    row = await db.fetchrow(Q["mark_paid"], order_id, pool_id, sale_transaction_id)
    assert row is not None, "the caller holds the order's lock"
    return OrderRecord.from_row(row)


async def set_status(
    db: Db,
    order_id: int,
    status: OrderStatus,
    reason: str | None,
    refund_transaction_id: int | None = None,
) -> OrderRecord:
    row = await db.fetchrow(Q["set_status"], order_id, status.value, reason, refund_transaction_id)
    assert row is not None, "the caller holds the order's lock"
    return OrderRecord.from_row(row)


async def due_to_expire(db: Db, now: datetime, limit: int) -> list[OrderRecord]:
    """Unpaid orders past their expiry, the oldest first."""
    return [OrderRecord.from_row(r) for r in await db.fetch(Q["due_to_expire"], now, limit)]


async def expire(db: Db, order_id: int) -> tuple[OrderRecord, str] | None:
    """Mark an order still waiting EXPIRED and let go of its codes: the order and its
    channel's path; None when it stopped waiting meanwhile."""
    row = await db.fetchrow(Q["expire"], order_id)
    return (OrderRecord.from_row(row), row["channel_path"]) if row else None


async def voided_code_ids(db: Db, order_id: int) -> list[int]:
    return [r["id"] for r in await db.fetch(Q["voided_code_ids"], order_id)]


async def sold_under(db: Db, pool_id: int, reservation_ref: str) -> int:
    """How many codes are sold under a reservation (committed by the pool's actor)."""
    count: int = await db.fetchval(Q["sold_under"], pool_id, reservation_ref)
    return count
