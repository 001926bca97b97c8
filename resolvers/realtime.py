"""REALTIME fulfilment: codes bought from the supplier the moment a buyer pays.

The order, the buyer's payment and the purchase (with a ref derived from the order) are
committed first; only then is the supplier called, with timeouts and retries with backoff,
behind a circuit breaker per supplier. The codes it sends are sealed and stored like pool
codes and the order is PAID; if it cannot deliver, the order ends FAILED and the payment
goes back to the wallet in the same transaction. ``re_place`` (补单) pays again and asks
for the same ref; a purchase whose process died is taken up again by the recovery task.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain import backoff
from domain.orders import OrderStatus, QueuedDelivery, sale_reference
from integrations.suppliers import SupplierError, SupplierOrder, SupplierRejected
from persistence import codes, orders, sales, supplied, supplier_orders
from persistence.catalog import ProductRecord
from persistence.order_batches import SoldOrder
from persistence.orders import DuplicateOrder, OrderRecord
from persistence.sales import Quote
from persistence.supplier_orders import SupplierOrderStatus
from resolvers.periodic import Periodic
from resolvers.supplier_clients import UnknownSupplier
from schema.errors import ErrorCode, UserError, user_error

if TYPE_CHECKING:
    from server import Services

log = logging.getLogger(__name__)

# The backoff between tries of one purchase never waits longer than this.
RETRY_CAP_SECONDS = 2.0
RECOVERY_BATCH = 20
UNAVAILABLE = "The supplier is unavailable now; try again later."
NOT_DELIVERED = "The supplier could not deliver this order; its payment went back to the wallet."


@dataclass(frozen=True, slots=True)
class Failed:
    """The purchase failed and the order's payment was returned."""

    record: OrderRecord
    error: UserError


def unavailable() -> UserError:
    return user_error(ErrorCode.SUPPLIER_UNAVAILABLE, UNAVAILABLE, "productId")


def lease_seconds(services: Services) -> float:
    return services.settings.supplier_recovery_seconds


async def buy(
    services: Services,
    product: ProductRecord,
    sale: Quote,
    *,
    key: str,
    digest: str,
    buyer: dict[str, Any],
    delivery: list[QueuedDelivery],
    actor: str,
) -> SoldOrder | Failed | DuplicateOrder | UserError:
    """Pay for a REALTIME order from the buyer's wallet and buy its codes. Raises
    persistence.ledger.InsufficientBalance when the wallet cannot pay."""
    assert product.supplier is not None, "a REALTIME product has a supplier"
    assert product.supplier_sku is not None, "a REALTIME product has a supplier's sku"
    if not services.suppliers.allows(product.supplier.id):
        # Fail fast: nothing is written while the supplier is known to be down.
        return unavailable()
    async with services.db.acquire() as conn, conn.transaction():
        order = await supplier_orders.insert_order(
            conn,
            channel_id=sale.buyer_id,
            product_id=product.id,
            idempotency_key=key,
            input_hash=digest,
            quantity=sale.quantity,
            unit_price=sale.chain.price,
            total=sale.total,
            buyer=buyer,
            delivery=delivery,
        )
        settled = await sales.post(conn, sale, sale_reference(order.channel_id, key))
        order = await supplier_orders.charge(
            conn, order.id, settled.transaction.id, settled.unit_price, settled.total
        )
        await supplier_orders.insert(
            conn,
            order_id=order.id,
            supplier_id=product.supplier.id,
            sku=product.supplier_sku,
            quantity=sale.quantity,
            lease_seconds=lease_seconds(services),
        )
    outcome = await fulfil(services, order.id, actor)
    return outcome if outcome is not None else order_state_changed()


def order_state_changed() -> UserError:
    return user_error(ErrorCode.ORDER_STATE, "The order was completed meanwhile; read it again.")


async def fulfil(services: Services, order_id: int, actor: str) -> SoldOrder | Failed | None:
    """Ask the supplier for the order's codes and finish the order either way; None when
    another try finished it first."""
    purchase = await supplier_orders.get(services.db, order_id)
    assert purchase is not None, "a REALTIME order has its purchase"
    bought, tries, error = await _purchase(services, purchase)
    if bought is not None:
        services.suppliers.succeeded(purchase.supplier_id)
        try:
            return await _deliver(services, purchase, bought, tries, actor)
        except supplied.KnownCode:
            error = "The supplier sent codes that were sold before."
    else:
        services.suppliers.failed(purchase.supplier_id)
    return await _fail(services, purchase, tries, error or "The supplier did not answer.")


async def _purchase(
    services: Services, purchase: supplier_orders.SupplierOrderRecord
) -> tuple[SupplierOrder | None, int, str | None]:
    """(the supplier's order or None, tries made, the last error)."""
    settings = services.settings
    try:
        adapter = await services.suppliers.adapter(purchase.supplier_id)
    except UnknownSupplier:
        return None, 0, "The product's supplier no longer exists."
    error = None
    for attempt in range(settings.supplier_attempts):
        if attempt:
            await asyncio.sleep(
                backoff.delay(
                    attempt - 1,
                    settings.supplier_retry_base_seconds,
                    RETRY_CAP_SECONDS,
                    random.random,
                )
            )
        try:
            return (
                await adapter.place(purchase.ref, purchase.sku, purchase.quantity),
                attempt + 1,
                None,
            )
        except SupplierRejected as rejected:
            return None, attempt + 1, str(rejected)
        except SupplierError as failure:
            error = str(failure)
    return None, settings.supplier_attempts, error


async def _deliver(
    services: Services,
    purchase: supplier_orders.SupplierOrderRecord,
    bought: SupplierOrder,
    tries: int,
    actor: str,
) -> SoldOrder | None:
    async with services.db.acquire() as conn, conn.transaction():
        order = await orders.lock(conn, purchase.order_id)
        current = await supplier_orders.lock(conn, purchase.order_id)
        assert order is not None
        assert current is not None
        if order.status is not OrderStatus.FULFILLING or current.round != purchase.round:
            return None
        assert order.sale_transaction_id is not None, "a FULFILLING order is paid"
        try:
            pool_id, code_ids = await supplied.store(
                conn,
                services.keyring,
                order.product_id,
                purchase.ref,
                bought.codes,
                f"supplier:{purchase.supplier_id}",
            )
        except supplied.AlreadyStored:
            return None
        await orders.attach_codes(conn, order.id, code_ids)
        for kind in ("SOLD", "DELIVERED"):
            await orders.record_events(conn, code_ids, kind, order.id, order.channel_id, actor)
        paid = await orders.mark_paid(conn, order.id, pool_id, order.sale_transaction_id)
        await supplier_orders.finish(conn, order.id, SupplierOrderStatus.FULFILLED, tries, None)
        queued = await orders.queue_deliveries(conn, [paid])
        sealed = await codes.sealed(conn, code_ids)
    if queued:
        services.outbox.wake()
    await _publish(services, paid)
    return SoldOrder(paid, sealed)


async def _fail(
    services: Services, purchase: supplier_orders.SupplierOrderRecord, tries: int, error: str
) -> Failed | None:
    async with services.db.acquire() as conn, conn.transaction():
        order = await orders.lock(conn, purchase.order_id)
        current = await supplier_orders.lock(conn, purchase.order_id)
        assert order is not None
        assert current is not None
        if order.status is not OrderStatus.FULFILLING or current.round != purchase.round:
            return None
        assert order.sale_transaction_id is not None, "a FULFILLING order is paid"
        reversal = await sales.refund(
            conn, order.sale_transaction_id, f"order:{order.id}:failed:{current.round}"
        )
        failed = await orders.set_status(
            conn, order.id, OrderStatus.FAILED, NOT_DELIVERED, reversal.id
        )
        await supplier_orders.finish(conn, order.id, SupplierOrderStatus.FAILED, tries, error[:500])
    await _publish(services, failed)
    return Failed(failed, user_error(ErrorCode.SUPPLIER_UNAVAILABLE, NOT_DELIVERED))


async def re_place(
    services: Services, order: OrderRecord, actor: str
) -> SoldOrder | Failed | UserError:
    """补单: pay for a FAILED order again and ask the supplier for the same ref. Raises
    persistence.ledger.InsufficientBalance when the wallet cannot pay."""
    purchase = await supplier_orders.get(services.db, order.id)
    if purchase is None:
        return user_error(
            ErrorCode.ORDER_STATE, "Only orders bought from a supplier are placed again.", "orderId"
        )
    if not services.suppliers.allows(purchase.supplier_id):
        return unavailable()
    async with services.db.acquire() as conn, conn.transaction():
        current = await orders.lock(conn, order.id)
        locked = await supplier_orders.lock(conn, order.id)
        assert current is not None
        assert locked is not None
        if (
            current.status is not OrderStatus.FAILED
            or locked.status is not SupplierOrderStatus.FAILED
        ):
            return user_error(
                ErrorCode.ORDER_STATE, "Only failed supplier orders are placed again.", "orderId"
            )
        path = await orders.channel_path(conn, current.channel_id)
        terms = await sales.terms(conn, path, current.product_id)
        sale = sales.quote_from(terms, buyer_id=current.channel_id, quantity=current.quantity)
        purchase = await supplier_orders.again(conn, order.id, lease_seconds(services))
        reference = (
            f"{sale_reference(current.channel_id, current.idempotency_key)}#{purchase.round}"
        )
        settled = await sales.post(conn, sale, reference)
        await supplier_orders.charge(
            conn, order.id, settled.transaction.id, settled.unit_price, settled.total
        )
    outcome = await fulfil(services, order.id, actor)
    return outcome if outcome is not None else order_state_changed()


async def _publish(services: Services, order: OrderRecord) -> None:
    from resolvers.order_payments import publish

    await publish(services, order)


class SupplierOrderRecovery(Periodic):
    """Takes up purchases whose process stopped before finishing them (a crash, a kill):
    their lease ran out, so this process asks the supplier for the same ref again."""

    name = "supplier-order-recovery"
    batch = RECOVERY_BATCH

    def __init__(self, services: Services) -> None:
        super().__init__(min(5.0, lease_seconds(services) / 3))
        self.services = services

    async def run_once(self) -> int:
        due = await supplier_orders.take_abandoned(
            self.services.db, lease_seconds(self.services), RECOVERY_BATCH
        )
        await asyncio.gather(*(fulfil(self.services, order_id, "recovery") for order_id in due))
        return len(due)
