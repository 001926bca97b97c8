"""Paid orders of one pool's sale batch, written together.

The pool actor sells the codes of many concurrent orders in one transaction; this writes
their ledger transactions and entries, the orders, their codes and events with a handful
of statements for the whole batch. Who can pay is decided in Python against the wallet
balances read under lock; the database's CHECK still has the last word.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain import ledger as rules
from domain.ledger import TransactionKind
from domain.orders import QueuedDelivery
from domain.settlement import AccountKind
from persistence.ledger import InsufficientBalance, account_ids
from persistence.orders import DuplicateOrder, OrderRecord, detach_released, queue_deliveries
from persistence.queries import queries
from persistence.sales import Quote

Q = queries("order_batches")


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
        """Written alone: a batch of one."""
        (result,) = await write_batch(conn, self.pool_id, [(self, code_ids)])
        if isinstance(result, Exception):
            raise result
        return result

    @staticmethod
    async def write_batch(
        conn: Any, pool_id: int, sales: Sequence[tuple[Any, tuple[int, ...]]]
    ) -> list[Any]:
        return await write_batch(conn, pool_id, sales)


@dataclass(frozen=True, slots=True)
class SoldOrder:
    """A written order with its codes' sealed secrets, so that handing them to the buyer
    needs no further read (see persistence.codes.open_sealed)."""

    record: OrderRecord
    sealed: list[Any]


async def write_batch(
    conn: Any, pool_id: int, sales: Sequence[tuple[PaidOrder, tuple[int, ...]]]
) -> list[SoldOrder | Exception]:
    """Write the orders of a batch; each result is its order, or why it was refused
    (InsufficientBalance, DuplicateOrder), in which case nothing of it is written."""
    results: list[SoldOrder | Exception | None] = [None] * len(sales)
    accounts = {p.account for order, _ in sales for p in order.sale.postings}
    ids = await account_ids(conn, list(accounts), lock=False)
    wallets = sorted(ids[a] for a in accounts if a.kind is AccountKind.CHANNEL_WALLET)
    balance = {r["id"]: r["balance"] for r in await conn.fetch(Q["lock_wallets"], wallets)}

    accepted: list[int] = []
    for i, (order, _) in enumerate(sales):
        debits: dict[int, Decimal] = defaultdict(Decimal)
        for p in order.sale.postings:
            if p.account.kind is AccountKind.CHANNEL_WALLET:
                debits[ids[p.account]] += p.amount
        if any(balance[w] + d > 0 for w, d in debits.items()):
            results[i] = InsufficientBalance([p.account for p in order.sale.postings[:1]])
            continue
        for w, d in debits.items():
            balance[w] += d
        accepted.append(i)

    digests = {
        i: rules.input_hash(
            TransactionKind.SALE,
            sales[i][0].sale.postings,
            channel_id=sales[i][0].channel_id,
            product_id=sales[i][0].product_id,
            quantity=sales[i][0].sale.quantity,
        )
        for i in accepted
    }
    rows = await conn.fetch(
        Q["insert_transactions"],
        [sales[i][0].ref for i in accepted],
        [digests[i] for i in accepted],
        [sales[i][0].channel_id for i in accepted],
        [sales[i][0].product_id for i in accepted],
        [sales[i][0].sale.quantity for i in accepted],
    )
    transaction_of = {r["reference"]: r["id"] for r in rows}
    for i in accepted:
        if sales[i][0].ref not in transaction_of:
            results[i] = DuplicateOrder(sales[i][0].key)
    written = [i for i in accepted if results[i] is None]
    if not written:
        return [r if r is not None else DuplicateOrder("") for r in results]

    entry_tx, entry_account, entry_amount = [], [], []
    for i in written:
        for p in sales[i][0].sale.postings:
            entry_tx.append(transaction_of[sales[i][0].ref])
            entry_account.append(ids[p.account])
            entry_amount.append(p.amount)
    await conn.execute(Q["insert_entries"], entry_tx, entry_account, entry_amount)

    def column(get: Any) -> list[Any]:
        return [get(sales[i][0]) for i in written]

    orders = await conn.fetch(
        Q["insert_orders"],
        column(lambda o: o.channel_id),
        column(lambda o: o.product_id),
        column(lambda o: o.key),
        column(lambda o: o.digest),
        column(lambda o: o.sale.quantity),
        column(lambda o: o.sale.chain.price),
        column(lambda o: o.sale.chain.price * o.sale.quantity),
        column(lambda o: transaction_of[o.ref]),
        column(lambda o: json.dumps(o.buyer)),
        pool_id,
        column(lambda o: json.dumps([d.as_json() for d in o.delivery])),
    )
    if len(orders) != len(written):
        # The ledger reference and the order key are one; only a row written by hand
        # could split them. Abort the batch rather than leave money without an order.
        raise RuntimeError("orders and their ledger transactions disagree")
    by_key = {(r["channel_id"], r["idempotency_key"]): OrderRecord.from_row(r) for r in orders}
    order_ids, code_ids, channel_ids, actors = [], [], [], []
    for i in written:
        order, codes = sales[i]
        record = by_key[(order.channel_id, order.key)]
        for code in codes:
            order_ids.append(record.id)
            code_ids.append(code)
            channel_ids.append(order.channel_id)
            actors.append(order.actor)
    await detach_released(conn, code_ids)
    await conn.execute(Q["attach_codes"], order_ids, code_ids, channel_ids, actors)
    await queue_deliveries(
        conn, [by_key[(sales[i][0].channel_id, sales[i][0].key)] for i in written]
    )
    sealed = {r["id"]: r for r in await conn.fetch(Q["sealed"], code_ids)}
    for i in written:
        order, codes = sales[i]
        record = by_key[(order.channel_id, order.key)]
        results[i] = SoldOrder(record, [sealed[c] for c in sorted(codes)])
    return [r if r is not None else DuplicateOrder("") for r in results]
