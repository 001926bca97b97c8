"""Orders: placing them, reading them, and handing their codes to their owner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from actors.messages import Sold
from domain.access import Action, Principal, in_subtree
from domain.catalog import Fulfilment
from domain.channels import check_sale
from domain.orders import (
    MAX_KEY,
    MAX_QUANTITY,
    DeliveryMethod,
    OrderStatus,
    PaymentMethod,
    QueuedDelivery,
    delivery_plan,
    input_hash,
    sale_reference,
)
from domain.pricing import PriceBelowCost
from domain.risk import OrderAttempt
from integrations.webhooks import ORDER_PAID
from persistence import (
    codes,
    commerce,
    generated,
    ledger,
    orders,
    pools,
    sales,
    webhook_endpoints,
)
from persistence.catalog import ProductRecord
from persistence.codes import PlainCode
from persistence.ledger import InsufficientBalance
from persistence.order_batches import PaidOrder, SoldOrder
from persistence.orders import DuplicateOrder, OrderRecord
from persistence.pools import PoolRecord
from resolvers import realtime
from resolvers.catalog import find_product
from schema import ids
from schema.catalog import Product
from schema.context import RECHECK_SECONDS, Info, require_viewer
from schema.errors import ErrorCode, UserError, bad_request, forbidden_request, user_error
from schema.orders import (
    DeliveredCode,
    Order,
    OrderCode,
    OrderFilter,
    PlaceOrderInput,
    PlaceOrderPayload,
    RevealCodesInput,
    RevealCodesPayload,
)
from schema.pagination import Connection, connection, window

log = logging.getLogger(__name__)

TOPIC_ORDER_UPDATED = "order-updated"
T = TypeVar("T")
# The largest order id cursor: pages run newest first.
_NEWEST = 2**62


def _refused(code: ErrorCode, message: str, field: str | None = None) -> PlaceOrderPayload:
    return PlaceOrderPayload(user_errors=[user_error(code, message, field)])


async def place_order(info: Info, input: PlaceOrderInput) -> PlaceOrderPayload:
    viewer = require_viewer(info)
    if not viewer.may(Action.HANDLE_ORDERS):
        return _refused(ErrorCode.FORBIDDEN, "Verifiers redeem codes; they do not place orders.")
    key = input.idempotency_key.strip()
    if not 1 <= len(key) <= MAX_KEY:
        return _refused(
            ErrorCode.INVALID_INPUT, f"Give a key of 1 to {MAX_KEY} characters.", "idempotencyKey"
        )
    request = _request(input)
    digest = input_hash(request)
    outcome = await _place(info, viewer, input, key, digest, request)
    if isinstance(outcome, realtime.Failed):
        return PlaceOrderPayload(order=Order.of(outcome.record), user_errors=[outcome.error])
    if isinstance(outcome, UserError | DuplicateOrder):
        # A retry of an order placed before is refused on its way (its key is taken, or
        # the stock it took is gone): it gets the first answer instead. Checking only
        # here keeps a read off every new order.
        earlier = await orders.by_key(info.context.services.db, viewer.channel_id, key)
        if earlier is not None:
            return await _replay(info, viewer, earlier, digest)
        assert isinstance(outcome, UserError), "a duplicate is committed before it is told"
        return PlaceOrderPayload(user_errors=[outcome])
    if isinstance(outcome, SoldOrder):
        if outcome.record.delivery:
            info.context.services.outbox.wake()
        record, delivered = outcome.record, await _delivered(info, outcome.sealed)
    else:
        record, delivered = outcome, await _plaintext(info, outcome)
    info.context.services.events.publish_soon(
        TOPIC_ORDER_UPDATED, {"id": record.id, "path": viewer.channel_path}
    )
    return PlaceOrderPayload(order=Order.of(record), codes=delivered)


@dataclass(frozen=True, slots=True)
class _Offer:
    """What the caller's channel is offered of one product: read once per change of the
    catalog, prices or restrictions, not once per order (see persistence.read_cache)."""

    product: ProductRecord | None
    restrictions: list[tuple[list[str], list[str]]]
    pools: list[PoolRecord]
    terms: sales.SaleTerms | None
    # The sale of each quantity on these terms, worked out once (see ``quote``).
    quotes: dict[tuple[int, int], sales.Quote] = field(default_factory=dict)

    def quote(self, buyer_id: int, quantity: int) -> sales.Quote:
        """The sale of ``quantity`` codes to ``buyer_id``; raises PriceBelowCost."""
        known = self.quotes.get((buyer_id, quantity))
        if known is None:
            assert self.terms is not None, "a visible product has terms"
            known = sales.quote_from(self.terms, buyer_id=buyer_id, quantity=quantity)
            self.quotes[(buyer_id, quantity)] = known
        return known


async def _offer(info: Info, viewer: Principal, product_id: str) -> _Offer:
    services = info.context.services
    db = services.db

    async def read() -> _Offer:
        product, restrictions = await asyncio.gather(
            find_product(info, viewer, product_id),
            commerce.path_restrictions(db, viewer.channel_path),
        )
        if product is None:
            return _Offer(None, restrictions, [], None)
        product_pools, terms = await asyncio.gather(
            pools.by_product(db, product.id),
            sales.terms(db, viewer.channel_path, product.id),
        )
        return _Offer(product, restrictions, product_pools, terms)

    return await services.reads.load(("offer", viewer.channel_path, product_id), read)


async def _place(
    info: Info,
    viewer: Principal,
    input: PlaceOrderInput,
    key: str,
    digest: str,
    request: dict[str, Any],
) -> SoldOrder | OrderRecord | realtime.Failed | DuplicateOrder | UserError:
    problem = _check_input(viewer, input)
    if problem:
        return problem
    buyer = input.buyer
    plan, wrong = delivery_plan(
        [(DeliveryMethod(d.method), d.target) for d in input.delivery or []],
        buyer.email if buyer else None,
        buyer.phone if buyer else None,
    )
    if wrong:
        return user_error(ErrorCode.INVALID_INPUT, wrong.message, wrong.field)
    if any(d.method is DeliveryMethod.WEBHOOK for d in plan) and not await _has_paid_webhook(
        info, viewer
    ):
        methods = [DeliveryMethod(d.method) for d in input.delivery or []]
        return user_error(
            ErrorCode.INVALID_INPUT,
            "Your channel has no active webhook endpoint for order.paid: create one"
            " (createWebhookEndpoint) or ask for another delivery.",
            f"delivery.{methods.index(DeliveryMethod.WEBHOOK)}.method",
        )
    offer = await _offer(info, viewer, input.product_id)
    product = offer.product
    if product is None or not product.on_shelf or offer.terms is None:
        return user_error(
            ErrorCode.PRODUCT_NOT_VISIBLE, "This product is not for sale to you.", "productId"
        )
    refusal = check_sale(
        offer.restrictions,
        buyer.region if buyer else None,
        buyer.customer_group if buyer else None,
    )
    if refusal is not None:
        return user_error(ErrorCode(refusal.rule.value), refusal.message, f"buyer.{refusal.field}")
    decision = await info.context.services.risk.assess(
        OrderAttempt(
            viewer.channel_id,
            product.id,
            input.quantity,
            buyer.ip if buyer else None,
            buyer.device_id if buyer else None,
            buyer.account_id if buyer else None,
        )
    )
    if not decision.allowed:
        return user_error(ErrorCode.RISK_BLOCKED, decision.reason or "Refused by risk control.")
    if decision.review:
        from resolvers.order_review import hold_for_review

        assert offer.terms is not None, "a visible product has terms"
        return await hold_for_review(
            info,
            viewer,
            product,
            offer.terms,
            offer.pools,
            input,
            key,
            digest,
            request,
            plan,
            decision,
        )
    if product.fulfilment is Fulfilment.REALTIME:
        if PaymentMethod(input.payment) is PaymentMethod.EXTERNAL:
            return user_error(
                ErrorCode.INVALID_INPUT,
                "Products bought from a supplier at order time are paid from the balance.",
                "payment",
            )
        return await _paying(
            key,
            _buy_from_supplier(
                info, viewer, product, offer, input.quantity, key, digest, request, plan
            ),
        )
    if PaymentMethod(input.payment) is PaymentMethod.EXTERNAL:
        from resolvers.external_orders import reserve_for_payment

        return await reserve_for_payment(
            info, viewer, product, input.quantity, key, digest, request, plan
        )
    return await _paying(
        key,
        _sell_from_pools(info, viewer, product, offer, input.quantity, key, digest, request, plan),
    )


async def _has_paid_webhook(info: Info, viewer: Principal) -> bool:
    """Whether a WEBHOOK delivery would go anywhere: it goes to the channel's active
    endpoints that take order.paid, and without one it would silently go nowhere."""
    endpoints = await webhook_endpoints.of_channel(info.context.services.db, viewer.channel_id)
    return any(e.disabled_at is None and ORDER_PAID in e.events for e in endpoints)


async def _paying(key: str, sale: Awaitable[T]) -> T | DuplicateOrder | UserError:
    """A sale that writes its order and takes its money, or why it did neither."""
    try:
        return await sale
    except DuplicateOrder as duplicate:
        return duplicate
    except ledger.IdempotencyConflict:
        # The sale's reference is the order's key: a concurrent twin is committing.
        return DuplicateOrder(key)
    except InsufficientBalance:
        return user_error(ErrorCode.INSUFFICIENT_BALANCE, "The balance cannot pay for this order.")


def _request(input: PlaceOrderInput) -> dict[str, Any]:
    """What a retry must repeat: the fields that define the order."""
    buyer = input.buyer
    return {
        "product": input.product_id,
        "quantity": input.quantity,
        "payment": str(input.payment),
        "buyer": vars(buyer) if buyer else None,
        "delivery": [(str(d.method), d.target) for d in input.delivery or []],
    }


def price_below_cost() -> UserError:
    return user_error(
        ErrorCode.PRICE_BELOW_COST,
        "Your price is below your parent's now; ask your parent to correct it.",
        "productId",
    )


def _check_input(viewer: Principal, input: PlaceOrderInput) -> UserError | None:
    if viewer.is_platform:
        return user_error(
            ErrorCode.INVALID_INPUT, "The platform does not buy from itself.", "productId"
        )
    if not 1 <= input.quantity <= MAX_QUANTITY:
        return user_error(
            ErrorCode.INVALID_INPUT, f"Order 1 to {MAX_QUANTITY} codes at a time.", "quantity"
        )
    return None


async def _sell_from_pools(
    info: Info,
    viewer: Principal,
    product: ProductRecord,
    offer: _Offer,
    quantity: int,
    key: str,
    digest: str,
    request: dict[str, Any],
    plan: list[QueuedDelivery],
) -> SoldOrder | UserError:
    """Sell from the product's pools in turn until one has the codes, or issue new ones
    for a GENERATED product. The sale is quoted first, outside the sale's transaction."""
    services = info.context.services
    ref = sale_reference(viewer.channel_id, key)
    try:
        sale = offer.quote(viewer.channel_id, quantity)
    except PriceBelowCost:
        return price_below_cost()
    paid = PaidOrder(
        0,
        viewer.channel_id,
        product.id,
        key,
        digest,
        request["buyer"] or {},
        sale,
        ref,
        viewer.actor,
        tuple(plan),
    )
    if product.fulfilment is Fulfilment.GENERATED:
        return await _issue_generated(info, product, paid)
    # Stock is the actors' to know: the cached pool list may be older than it.
    for pool in offer.pools:
        work = replace(paid, pool_id=pool.id)
        outcome = await services.pools.sell(pool.id, ref, quantity, work)
        if isinstance(outcome, Sold):
            sold: SoldOrder = outcome.result
            return sold
    return user_error(ErrorCode.OUT_OF_STOCK, "Not enough codes in stock.", "quantity")


async def _buy_from_supplier(
    info: Info,
    viewer: Principal,
    product: ProductRecord,
    offer: _Offer,
    quantity: int,
    key: str,
    digest: str,
    request: dict[str, Any],
    plan: list[QueuedDelivery],
) -> SoldOrder | realtime.Failed | DuplicateOrder | UserError:
    try:
        sale = offer.quote(viewer.channel_id, quantity)
        return await realtime.buy(
            info.context.services,
            product,
            sale,
            key=key,
            digest=digest,
            buyer=request["buyer"] or {},
            delivery=plan,
            actor=viewer.actor,
        )
    except PriceBelowCost:
        return price_below_cost()


async def _issue_generated(info: Info, product: ProductRecord, paid: PaidOrder) -> SoldOrder:
    """Codes the platform issues itself: created sold, for this order, in its transaction."""
    services = info.context.services
    async with services.db.acquire() as conn, conn.transaction():
        code_ids = await generated.issue(
            conn,
            services.keyring,
            product.id,
            paid.sale.quantity,
            validity_days=product.validity_days,
            max_uses=product.max_uses,
            with_password=False,
            actor=paid.actor,
        )
        pool_id = await generated.generated_pool(conn, product.id)
        return await replace(paid, pool_id=pool_id)(conn, tuple(code_ids))


async def _replay(
    info: Info, viewer: Principal, earlier: OrderRecord, digest: str
) -> PlaceOrderPayload:
    if earlier.input_hash != digest:
        return _refused(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This idempotency key was used for a different order.",
            "idempotencyKey",
        )
    return PlaceOrderPayload(order=Order.of(earlier), codes=await _plaintext(info, earlier))


async def _plaintext(info: Info, order: OrderRecord) -> list[DeliveredCode]:
    """The order's codes in plaintext; none before it is paid (or after a refund)."""
    if order.status is not OrderStatus.PAID:
        return []
    services = info.context.services
    plain: list[PlainCode] = await codes.reveal_order(services.db, services.keyring, order.id)
    return [DeliveredCode.of(p) for p in plain]


async def _delivered(info: Info, sealed: list[Any]) -> list[DeliveredCode]:
    services = info.context.services
    plain = await codes.open_sealed(services.db, services.keyring, sealed)
    return [DeliveredCode.of(p) for p in plain]


async def reveal_codes(info: Info, input: RevealCodesInput) -> RevealCodesPayload:
    """Plaintext leaves only to the channel that placed the order, and each time is logged."""
    viewer = require_viewer(info)
    if not viewer.may(Action.HANDLE_ORDERS):
        return RevealCodesPayload(
            user_errors=[user_error(ErrorCode.FORBIDDEN, "Verifiers do not see orders' codes.")]
        )
    db = info.context.services.db
    key = ids.decode("Order", input.order_id)
    found = await orders.get_in_subtree(db, key, viewer.channel_path) if key else None
    if found is None:
        return RevealCodesPayload(
            user_errors=[user_error(ErrorCode.NOT_FOUND, "No such order.", "orderId")]
        )
    if found.channel_id != viewer.channel_id:
        return RevealCodesPayload(
            user_errors=[
                user_error(
                    ErrorCode.FORBIDDEN, "Only the channel that placed an order sees its codes."
                )
            ]
        )
    if found.status is not OrderStatus.PAID:
        return RevealCodesPayload(
            order=Order.of(found),
            user_errors=[
                user_error(ErrorCode.ORDER_STATE, "Codes are shown once the order is paid.")
            ],
        )
    code_ids = await orders.code_ids_of(db, found.id)
    await orders.record_events(db, code_ids, "REVEALED", found.id, viewer.channel_id, viewer.actor)
    return RevealCodesPayload(order=Order.of(found), codes=await _plaintext(info, found))


def _order_reader(info: Info) -> Principal:
    viewer = require_viewer(info)
    if not viewer.may(Action.HANDLE_ORDERS):
        raise forbidden_request("Verifiers redeem codes; they do not read orders.")
    return viewer


async def order(info: Info, id: str) -> Order | None:
    viewer = _order_reader(info)
    key = ids.decode("Order", id)
    if key is None:
        return None
    found = await orders.get_in_subtree(info.context.services.db, key, viewer.channel_path)
    return Order.of(found) if found else None


async def orders_page(
    info: Info, filter: OrderFilter | None, first: int | None, after: str | None
) -> Connection[Order]:
    viewer = _order_reader(info)
    services = info.context.services
    win = window(first, after, services.settings.max_page_size)
    product_id = None
    if filter is not None and filter.product_id is not None:
        product_id = ids.decode("Product", filter.product_id)
        if product_id is None:
            raise bad_request("`filter.productId` is not a product id.")
    status = OrderStatus(filter.status) if filter is not None and filter.status else None
    rows = await orders.page(
        services.db,
        viewer.channel_path,
        win.after_key or _NEWEST,
        status,
        product_id,
        win.limit,
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: Order.of(r))


async def resolve_codes(info: Info, record: OrderRecord) -> list[OrderCode]:
    return [OrderCode(record=c) for c in await orders.codes_of(info.context.services.db, record.id)]


async def resolve_product(info: Info, record: OrderRecord) -> Product | None:
    viewer = require_viewer(info)
    found = await find_product(info, viewer, ids.encode("Product", record.product_id))
    return Product(record=found) if found else None


async def order_updated(info: Info, order_id: str | None) -> AsyncGenerator[Order, None]:
    viewer = _order_reader(info)
    wanted = None
    if order_id is not None:
        wanted = ids.decode("Order", order_id)
        if wanted is None:
            raise bad_request("`orderId` is not an order id.")
    db = info.context.services.db
    async with info.context.services.events.subscribe(TOPIC_ORDER_UPDATED) as queue:
        while True:
            event = await queue.get()
            if wanted is not None and event["id"] != wanted:
                continue
            if not in_subtree(event["path"], viewer.channel_path):
                continue
            found = await orders.get_in_subtree(db, event["id"], viewer.channel_path)
            if found is not None:
                await info.context.recheck(max_age=RECHECK_SECONDS)
                yield Order.of(found)
