"""Payments reported for orders: one row per gateway transaction id."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from persistence.queries import queries
from persistence.types import Db

Q = queries("payments")


class PaymentSource(enum.StrEnum):
    CALLBACK = "CALLBACK"
    MANUAL = "MANUAL"


class PaymentOutcome(enum.StrEnum):
    FULFILLED = "FULFILLED"  # it paid for the order's codes
    CREDITED = "CREDITED"  # the order could not take it: it went to the channel's wallet


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: int
    transaction_id: str
    order_id: int
    amount: Decimal
    source: PaymentSource
    outcome: PaymentOutcome
    ledger_transaction_id: int
    actor: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> PaymentRecord:
        return cls(
            id=row["id"],
            transaction_id=row["transaction_id"],
            order_id=row["order_id"],
            amount=row["amount"],
            source=PaymentSource(row["source"]),
            outcome=PaymentOutcome(row["outcome"]),
            ledger_transaction_id=row["ledger_transaction_id"],
            actor=row["actor"],
            created_at=row["created_at"],
        )


async def claim(
    db: Db,
    *,
    transaction_id: str,
    order_id: int,
    amount: Decimal,
    source: PaymentSource,
    outcome: PaymentOutcome,
    ledger_transaction_id: int,
    actor: str | None,
) -> PaymentRecord | None:
    """The new payment; None when ``transaction_id`` was claimed already."""
    row = await db.fetchrow(
        Q["claim"],
        transaction_id,
        order_id,
        amount,
        source.value,
        outcome.value,
        ledger_transaction_id,
        actor,
    )
    return PaymentRecord.from_row(row) if row else None


async def by_transaction(db: Db, transaction_id: str) -> PaymentRecord | None:
    row = await db.fetchrow(Q["by_transaction"], transaction_id)
    return PaymentRecord.from_row(row) if row else None


async def of_order(db: Db, order_id: int) -> list[PaymentRecord]:
    return [PaymentRecord.from_row(r) for r in await db.fetch(Q["of_order"], order_id)]
