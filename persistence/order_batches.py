"""Paid orders written together, by one statement.

A pool actor sells the codes of many concurrent orders at once. ``PaidOrder.sell_batch``
writes their ledger transactions and entries, the orders, their codes, events and
deliveries, and marks the codes sold, with one call of ``sell_paid_orders`` (migration
0012): one round trip for the whole batch, where a statement per step kept the batch,
and the orders queued behind it, waiting on a dozen. A GENERATED sale writes its order
with ``place_paid_orders`` in the transaction that issues its codes. Who can pay is
decided in the database against the wallet balances it locks; the wallet CHECK still has
the last word.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from domain.orders import OrderStatus, PaymentMethod, QueuedDelivery
from persistence.code_states import Counts, Fenced, StaleWindow
from persistence.ledger import InsufficientBalance
from persistence.orders import DuplicateOrder, OrderRecord
from persistence.queries import queries
from persistence.sales import Quote

Q = queries("order_batches")

# The SQLSTATEs sell_paid_orders raises: the pool's epoch moved on; codes the actor
# believed free were not.
_FENCED = "QY001"
_STALE = "QY002"


@dataclass(frozen=True, slots=True, eq=False)
class PaidOrder:
    """An order paid from the buyer's wallet, quoted and waiting for its codes: the work
    of a pool actor's sale (see persistence.code_states.sell)."""

    pool_id: int
    channel_id: int
    product_id: int
    key: str
    digest: str
    buyer: dict[str, Any]
    sale: Quote
    ref: str
    actor: str
    delivery: tuple[QueuedDelivery, ...] = ()

    async def __call__(self, conn: Any, code_ids: tuple[int, ...]) -> SoldOrder:
        """Written alone, in the caller's transaction, for codes the caller sells."""
        rows = await conn.fetch(Q["place"], self.pool_id, *_arguments([(self, code_ids)]))
        (result,) = _results(rows, [(self, code_ids)])
        if isinstance(result, Exception):
            raise result
        return result

    @staticmethod
    async def sell_batch(
        conn: Any, pool_id: int, epoch: int, sales: Sequence[tuple[Any, tuple[int, ...]]]
    ) -> tuple[Counts, list[SoldOrder | Exception]]:
        """Sell the codes of many paid orders of one pool and write the orders, in one
        statement (its own transaction); each result is its order, or why nothing of it
        was written (InsufficientBalance, DuplicateOrder)."""
        try:
            rows = await conn.fetch(Q["sell"], pool_id, epoch, *_arguments(sales))
        except asyncpg.PostgresError as error:
            if error.sqlstate == _FENCED:
                raise Fenced from error
            if error.sqlstate == _STALE:
                raise StaleWindow from error
            raise
        return Counts.from_row(rows[0]), _results(rows, sales)


@dataclass(frozen=True, slots=True)
class SoldOrder:
    """A written order with its codes' sealed secrets, so that handing them to the buyer
    needs no further read (see persistence.codes.open_sealed)."""

    record: OrderRecord
    sealed: list[Any]


def _arguments(sales: Sequence[tuple[PaidOrder, tuple[int, ...]]]) -> list[list[Any]]:
    """The columns of the orders, their postings and their codes, as the SQL takes them."""
    orders: list[list[Any]] = [[] for _ in range(12)]
    postings: list[list[Any]] = [[] for _ in range(5)]
    codes: list[list[Any]] = [[], []]
    for n, (order, code_ids) in enumerate(sales, start=1):
        sale = order.sale
        for column, value in zip(
            orders,
            (
                order.ref,
                sale.digest,
                order.channel_id,
                order.product_id,
                sale.quantity,
                order.key,
                order.digest,
                sale.chain.price,
                sale.total,
                json.dumps(order.buyer),
                json.dumps([d.as_json() for d in order.delivery]),
                order.actor,
            ),
            strict=True,
        ):
            column.append(value)
        for posting in sale.postings:
            account = posting.account
            for column, value in zip(
                postings,
                (n, account.kind.value, account.channel_id, account.supplier_id, posting.amount),
                strict=True,
            ):
                column.append(value)
        codes[0] += [n] * len(code_ids)
        codes[1] += code_ids
    return [*orders, *postings, *codes]


def _record(order: PaidOrder, row: asyncpg.Record) -> OrderRecord:
    """The order as written: what the database gave it, and the rest as it was given."""
    sale = order.sale
    return OrderRecord(
        id=row["order_id"],
        channel_id=order.channel_id,
        product_id=order.product_id,
        idempotency_key=order.key,
        input_hash=order.digest,
        quantity=sale.quantity,
        unit_price=sale.chain.price,
        total=sale.total,
        payment=PaymentMethod.BALANCE,
        status=OrderStatus.PAID,
        pool_id=order.pool_id,
        sale_transaction_id=row["sale_transaction_id"],
        buyer=order.buyer,
        created_at=row["created_at"],
        paid_at=row["paid_at"],
        delivery=order.delivery,
    )


def _results(
    rows: Sequence[asyncpg.Record], sales: Sequence[tuple[PaidOrder, tuple[int, ...]]]
) -> list[SoldOrder | Exception]:
    results: list[SoldOrder | Exception] = []
    for row in sorted(rows, key=lambda r: r["n"]):
        order = sales[row["n"] - 1][0]
        if row["outcome"] == "PAID":
            results.append(SoldOrder(_record(order, row), list(row["sealed"])))
        elif row["outcome"] == "INSUFFICIENT_BALANCE":
            results.append(InsufficientBalance([p.account for p in order.sale.postings[:1]]))
        else:
            results.append(DuplicateOrder(order.key))
    return results
