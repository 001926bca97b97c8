"""Taking an external payment for an order: exactly once, however it arrives.

A payment is applied in one of three ways, tried in this order:

1. The order still holds its reservation: the pool's actor commits it (its own
   statement, idempotent: a repeated commit returns the codes sold already), then one
   database transaction locks the order, claims the payment's transaction id, posts the
   sale paid from PAYMENT_CLEARING, attaches the codes and marks the order PAID. A crash
   between the actor's commit and that transaction leaves codes sold under the
   reservation's reference; the gateway's retry commits again, gets the same codes and
   finishes the order.
2. The reservation is gone (expired or swept): fresh codes are sold through the actor
   with the same transaction as the sale's ``work``, so codes and order commit together.
3. The order cannot take the payment (no stock left, cancelled, paid already, the price
   changed): the money is credited to the ordering channel's wallet (Dr PAYMENT_CLEARING,
   Cr wallet), and an order that was waiting becomes REFUNDED with a reason.

Every way claims the gateway's transaction id (``payments.transaction_id`` is unique) in
the transaction that does the work, under the order's row lock, so concurrent and
repeated notifications of one payment have the effect of one. No payment is dropped:
each ends as a FULFILLED or a CREDITED payment row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from actors.messages import Committed, Sold
from domain.ledger import TransactionKind
from domain.orders import OrderStatus, sale_reference
from domain.pricing import PriceBelowCost
from domain.settlement import PAYMENT_CLEARING, top_up
from persistence import ledger, orders, payments, pools, sales
from persistence.orders import OrderRecord
from persistence.payments import PaymentOutcome, PaymentRecord, PaymentSource
from persistence.types import Db
from resolvers.orders import TOPIC_ORDER_UPDATED
from schema import ids

if TYPE_CHECKING:
    from server import Services

log = logging.getLogger(__name__)

# An order in these states takes a payment for its codes; any other passes it to the wallet.
PAYABLE = frozenset({OrderStatus.AWAITING_PAYMENT, OrderStatus.EXPIRED})

NO_STOCK = (
    "Paid after its reservation expired, with no stock left: "
    "the payment was credited to the channel's balance."
)
PRICE_CHANGED = (
    "The price changed before the payment arrived: "
    "the payment was credited to the channel's balance."
)


@dataclass(frozen=True, slots=True)
class Applied:
    """What became of a payment, and the order as it is after it."""

    order: OrderRecord
    payment: PaymentRecord
    # True when the payment had been applied before (a repeated notification).
    replayed: bool = False


class PaymentConflict(Exception):
    """The transaction id was used for another order."""

    def __init__(self, earlier: PaymentRecord) -> None:
        super().__init__(f"transaction {earlier.transaction_id} paid order {earlier.order_id}")
        self.earlier = earlier


class _AlreadyClaimed(Exception):
    def __init__(self, earlier: PaymentRecord) -> None:
        super().__init__(earlier.transaction_id)
        self.earlier = earlier


class _NotPayable(Exception):
    """The order stopped waiting for payment (paid by another payment, cancelled)."""


class _PriceChanged(Exception):
    """The sale would post another total than the one paid."""


@dataclass(frozen=True, slots=True)
class _Payment:
    transaction_id: str
    amount: Decimal
    source: PaymentSource
    actor: str


async def apply_payment(
    services: Services,
    order: OrderRecord,
    transaction_id: str,
    amount: Decimal,
    source: PaymentSource,
    actor: str,
) -> Applied:
    """Apply a payment of ``amount`` (the order's total: the caller checks) to ``order``.

    Raises PaymentConflict when ``transaction_id`` paid another order.
    """
    paid = _Payment(transaction_id, amount, source, actor)
    earlier = await payments.by_transaction(services.db, transaction_id)
    if earlier is not None:
        return await _replay(services.db, earlier, order)
    try:
        applied = await _fulfil(services, order, paid) if order.status in PAYABLE else None
        if applied is None:
            applied = await _credit(services, order, paid)
    except _AlreadyClaimed as claimed:
        return await _replay(services.db, claimed.earlier, order)
    if applied.order.status is not order.status:
        if applied.order.delivery:
            services.outbox.wake()
        await publish(services, applied.order)
    return applied


async def publish(services: Services, order: OrderRecord) -> None:
    """Tell ``orderUpdated`` subscribers of the order's subtree."""
    path = await orders.channel_path(services.db, order.channel_id)
    await services.events.publish(TOPIC_ORDER_UPDATED, {"id": order.id, "path": path})


async def _replay(db: Db, earlier: PaymentRecord, order: OrderRecord) -> Applied:
    if earlier.order_id != order.id:
        raise PaymentConflict(earlier)
    current = await orders.get(db, order.id)
    assert current is not None, "orders are never deleted"
    return Applied(current, earlier, replayed=True)


async def _fulfil(services: Services, order: OrderRecord, paid: _Payment) -> Applied | None:
    """The order's codes for the payment: its reservation, else fresh stock; None when
    neither can be had (the payment is then credited)."""
    committed: tuple[int, ...] = ()
    if order.pool_id is not None and order.reservation_ref is not None:
        answer = await services.pools.commit(order.pool_id, order.reservation_ref)
        if isinstance(answer, Committed):
            committed = answer.code_ids
            pool_id = order.pool_id
            try:
                async with services.db.acquire() as conn, conn.transaction():
                    return await _paid_with(conn, order, committed, pool_id, paid)
            except _NotPayable:
                # Paid already by another payment with these same codes: this one is extra.
                return None
            except (_PriceChanged, PriceBelowCost):
                # The codes were sold under the reservation but the order will not take
                # them: void them so they are neither sold to nobody nor sold twice.
                await services.pools.void(pool_id, list(committed))
                return None
    return await _sell_fresh(services, order, paid)


async def _sell_fresh(services: Services, order: OrderRecord, paid: _Payment) -> Applied | None:
    ref = order.reservation_ref or sale_reference(order.channel_id, order.idempotency_key)
    candidates = [p for p in await pools.by_product(services.db, order.product_id) if p.available]
    for pool in candidates:

        async def work(conn: Any, code_ids: tuple[int, ...], pool_id: int = pool.id) -> Applied:
            return await _paid_with(conn, order, code_ids, pool_id, paid)

        try:
            outcome = await services.pools.sell(pool.id, ref, order.quantity, work)
        except (_NotPayable, _PriceChanged, PriceBelowCost):
            return None
        if isinstance(outcome, Sold):
            applied: Applied = outcome.result
            return applied
    return None


async def _paid_with(
    conn: Any, order: OrderRecord, code_ids: tuple[int, ...], pool_id: int, paid: _Payment
) -> Applied:
    """In the caller's transaction: the order takes the payment for ``code_ids``."""
    current = await orders.lock(conn, order.id)
    assert current is not None, "orders are never deleted"
    earlier = await payments.by_transaction(conn, paid.transaction_id)
    if earlier is not None:
        raise _AlreadyClaimed(earlier)
    if current.status not in PAYABLE:
        raise _NotPayable
    settled = await sales.settle(
        conn,
        buyer_id=current.channel_id,
        buyer_path=await orders.channel_path(conn, current.channel_id),
        product_id=current.product_id,
        quantity=current.quantity,
        reference=sale_reference(current.channel_id, current.idempotency_key),
        paid_from=PAYMENT_CLEARING,
    )
    if settled.total != paid.amount:
        raise _PriceChanged
    payment = await _claim(conn, current, paid, PaymentOutcome.FULFILLED, settled.transaction.id)
    sold = list(code_ids)
    await orders.attach_missing_codes(conn, current.id, sold)
    updated = await orders.mark_paid(conn, current.id, pool_id, settled.transaction.id)
    await orders.record_events(conn, sold, "SOLD", current.id, current.channel_id, paid.actor)
    await orders.queue_deliveries(conn, [updated])
    return Applied(updated, payment)


async def _credit(services: Services, order: OrderRecord, paid: _Payment) -> Applied:
    """The order cannot take the payment: the money goes to the channel's wallet."""
    async with services.db.acquire() as conn, conn.transaction():
        current = await orders.lock(conn, order.id)
        assert current is not None, "orders are never deleted"
        earlier = await payments.by_transaction(conn, paid.transaction_id)
        if earlier is not None:
            raise _AlreadyClaimed(earlier)
        waiting = current.status in PAYABLE
        reason = NO_STOCK if waiting and await _out_of_stock(conn, current) else PRICE_CHANGED
        posted = await ledger.post(
            conn,
            TransactionKind.TOP_UP,
            top_up(current.channel_id, paid.amount, PAYMENT_CLEARING),
            reference=f"payment:{paid.transaction_id}",
            channel_id=current.channel_id,
            memo=f"Payment {paid.transaction_id} for order {ids.encode('Order', current.id)}",
        )
        payment = await _claim(conn, current, paid, PaymentOutcome.CREDITED, posted.id)
        if waiting:
            current = await orders.set_status(conn, current.id, OrderStatus.REFUNDED, reason)
            await orders.detach_codes(conn, current.id)
    if waiting and order.pool_id is not None and order.reservation_ref is not None:
        # A reservation still held (the price changed) is of no use now.
        await services.pools.release(order.pool_id, order.reservation_ref)
    return Applied(current, payment)


async def _out_of_stock(conn: Any, order: OrderRecord) -> bool:
    free = sum(p.available for p in await pools.by_product(conn, order.product_id))
    return free < order.quantity


async def _claim(
    conn: Any, order: OrderRecord, paid: _Payment, outcome: PaymentOutcome, ledger_id: int
) -> PaymentRecord:
    payment = await payments.claim(
        conn,
        transaction_id=paid.transaction_id,
        order_id=order.id,
        amount=paid.amount,
        source=paid.source,
        outcome=outcome,
        ledger_transaction_id=ledger_id,
        actor=paid.actor,
    )
    if payment is None:
        # Claimed for another order meanwhile (the order lock serialises one order's).
        earlier = await payments.by_transaction(conn, paid.transaction_id)
        assert earlier is not None, "the conflict was committed"
        raise _AlreadyClaimed(earlier)
    return payment
