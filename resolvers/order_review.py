"""Orders held for review: holding them, and a reviewer approving or rejecting them.

When risk control decides REVIEW, placeOrder holds the order instead of selling it. For
a POOL product its codes are reserved through the pool's actor for ``REVIEW_HOLD``, under
a reference unique to this attempt, and the order is written REVIEW with them, its price
and its deliveries, in one transaction, the way an EXTERNAL order is held while it waits
for payment. A GENERATED product has nothing to reserve: its codes are made when it is
paid. No money moves until approval. Products bought from a supplier at order time and
orders paid externally cannot be held (there is no reservation to hold, or the payment
would not wait for the review): they are refused RISK_BLOCKED.

``approveOrder`` (the platform or a channel above the buyer, by an OWNER or OPERATOR)
pays the order from the buyer's wallet. The price and the balance are checked first, so
that a refusal changes nothing. Then, under the order's row lock, the pool's actor
commits the reservation (its own statement, idempotent) and one transaction settles the
sale, attaches the codes, marks the order PAID and queues its deliveries. No wallet is
locked while the actor is asked, because an actor's sale batch may be waiting for that
wallet. Should the wallet be emptied between the check and the sale, the order stays
REVIEW with its codes committed under its reservation: approving again once the money is
there completes it, and rejecting it voids those codes, which nobody has seen.

``rejectOrder`` releases the reservation and ends the order CANCELLED with the reason.
Both are idempotent, and each records the reviewer's decision as a risk event.

An order nobody reviews expires with its hold: the expiry pass returns its codes and
marks it EXPIRED, like an unpaid order.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from actors.messages import Committed, Reserved
from domain.access import Principal, Role
from domain.catalog import Fulfilment
from domain.money import cents
from domain.orders import OrderStatus, PaymentMethod, QueuedDelivery, sale_reference
from domain.pricing import PriceBelowCost
from domain.risk import (
    REVIEW_HOLD,
    NewRiskEvent,
    Outcome,
    RiskDecision,
    Subject,
    SubjectKind,
    clean_reason,
)
from domain.settlement import wallet
from persistence import catalog, generated, ledger, orders, risk, sales
from persistence.catalog import ProductRecord
from persistence.ledger import InsufficientBalance
from persistence.orders import DuplicateOrder, OrderRecord
from persistence.pools import PoolRecord
from persistence.sales import SaleTerms, UnknownProduct
from resolvers.external_orders import _one_at_a_time
from resolvers.order_payments import publish
from resolvers.orders import price_below_cost
from schema import ids
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, Refused, UserError, order_state, user_error
from schema.orders import Order, PlaceOrderInput
from schema.risk import (
    ApproveOrderInput,
    ApproveOrderPayload,
    RejectOrderInput,
    RejectOrderPayload,
)

REVIEW_ROLES = frozenset({Role.OWNER, Role.OPERATOR})

CANNOT_HOLD = (
    "This order needs a review, and orders of products bought at order time or paid "
    "externally cannot be held for one."
)
NOT_FOUND = "No such order."
NOT_REVIEWER = (
    "Held orders are reviewed by the platform or a channel above the buyer, by an owner "
    "or operator."
)
NOT_HELD = "Only an order held for review can be approved or rejected."
HOLD_GONE = "This order no longer holds its codes."
PRICE_CHANGED = (
    "The buyer's price changed since the order was placed: reject it, and the buyer may "
    "order again."
)
NOT_SOLD = "The product is no longer sold to the buyer."
NO_BALANCE = "The buyer's balance cannot pay for this order."


# --- holding ----------------------------------------------------------------------------


async def hold_for_review(
    info: Info,
    viewer: Principal,
    product: ProductRecord,
    terms: SaleTerms,
    candidates: Sequence[PoolRecord],
    input: PlaceOrderInput,
    key: str,
    digest: str,
    request: dict[str, Any],
    plan: list[QueuedDelivery],
    decision: RiskDecision,
) -> OrderRecord | DuplicateOrder | UserError:
    """Write the order REVIEW, holding its codes; see the module's docstring."""
    if product.fulfilment is Fulfilment.REALTIME or (
        PaymentMethod(input.payment) is PaymentMethod.EXTERNAL
    ):
        return user_error(ErrorCode.RISK_BLOCKED, CANNOT_HOLD)
    services = info.context.services
    try:
        sale = sales.quote_from(terms, buyer_id=viewer.channel_id, quantity=input.quantity)
    except PriceBelowCost:
        return price_below_cost()
    unit_price = sale.chain.price
    total = cents(unit_price * input.quantity)
    # Checked now so that a buyer who could not pay is told at once, not after a review;
    # the money itself is taken when the order is approved.
    if -(await ledger.balance(services.db, wallet(viewer.channel_id))) < total:
        return user_error(ErrorCode.INSUFFICIENT_BALANCE, "The balance cannot pay for this order.")
    new_order = {
        "channel_id": viewer.channel_id,
        "product_id": product.id,
        "idempotency_key": key,
        "input_hash": digest,
        "quantity": input.quantity,
        "unit_price": unit_price,
        "total": total,
        "buyer": request["buyer"] or {},
        "reason": decision.reason or "Held for review.",
        "delivery": plan,
    }
    async with _one_at_a_time(viewer.channel_id, key):
        if await orders.by_key(services.db, viewer.channel_id, key) is not None:
            return DuplicateOrder(key)
        if product.fulfilment is Fulfilment.GENERATED:
            expires_at = datetime.now(UTC) + REVIEW_HOLD
            return await _write_held(info, viewer, new_order, None, None, expires_at, decision)
        ref = f"{sale_reference(viewer.channel_id, key)}#{secrets.token_hex(6)}"
        for pool in candidates:
            reserved = await services.pools.reserve(pool.id, ref, input.quantity, REVIEW_HOLD)
            if not isinstance(reserved, Reserved):
                continue
            try:
                return await _write_held(
                    info, viewer, new_order, pool.id, reserved, reserved.expires_at, decision
                )
            except Exception as error:
                # Nothing was written: give the codes back at once rather than at expiry.
                await services.pools.release(pool.id, ref)
                if isinstance(error, DuplicateOrder):
                    return error
                raise
    return user_error(ErrorCode.OUT_OF_STOCK, "Not enough codes in stock.", "quantity")


async def _write_held(
    info: Info,
    viewer: Principal,
    new_order: dict[str, Any],
    pool_id: int | None,
    reserved: Reserved | None,
    expires_at: datetime,
    decision: RiskDecision,
) -> OrderRecord:
    async with info.context.services.db.acquire() as conn, conn.transaction():
        order = await risk.insert_review_order(
            conn,
            pool_id=pool_id,
            reservation_ref=reserved.ref if reserved else None,
            expires_at=expires_at,
            **new_order,
        )
        if reserved is not None:
            held = list(reserved.code_ids)
            await orders.attach_codes(conn, order.id, held)
            await orders.record_events(
                conn, held, "RESERVED", order.id, viewer.channel_id, viewer.actor
            )
        if decision.event_id is not None:
            await risk.attach_order(conn, decision.event_id, order.id)
    return order


# --- reviewing --------------------------------------------------------------------------


async def _reviewable(info: Info, viewer: Principal, order_id: str) -> OrderRecord:
    key = ids.decode("Order", order_id)
    db = info.context.services.db
    found = await orders.get_in_subtree(db, key, viewer.channel_path) if key else None
    if found is None:
        raise Refused(user_error(ErrorCode.NOT_FOUND, NOT_FOUND, "orderId"))
    if found.channel_id == viewer.channel_id or viewer.role not in REVIEW_ROLES:
        raise Refused(user_error(ErrorCode.FORBIDDEN, NOT_REVIEWER, "orderId"))
    return found


async def approve_order(info: Info, input: ApproveOrderInput) -> ApproveOrderPayload:
    viewer = require_viewer(info)
    try:
        order = await _approve(info, viewer, input.order_id)
    except Refused as refused:
        return ApproveOrderPayload(user_errors=[refused.error])
    return ApproveOrderPayload(order=Order.of(order))


async def _approve(info: Info, viewer: Principal, order_id: str) -> OrderRecord:
    services = info.context.services
    order = await _reviewable(info, viewer, order_id)
    if order.status is OrderStatus.PAID:
        return order
    if order.status is not OrderStatus.REVIEW:
        raise order_state(NOT_HELD)
    await _check_payable(info, order)
    actor = viewer.actor
    async with services.db.acquire() as conn, conn.transaction():
        current = await orders.lock(conn, order.id)
        assert current is not None, "orders are never deleted"
        if current.status is OrderStatus.PAID:
            return current
        if current.status is not OrderStatus.REVIEW:
            raise order_state(NOT_HELD)
        pool_id, code_ids = await _codes_for(info, conn, current, actor)
        try:
            settled = await sales.settle(
                conn,
                buyer_id=current.channel_id,
                buyer_path=await orders.channel_path(conn, current.channel_id),
                product_id=current.product_id,
                quantity=current.quantity,
                reference=sale_reference(current.channel_id, current.idempotency_key),
            )
        except InsufficientBalance as error:
            raise Refused(user_error(ErrorCode.INSUFFICIENT_BALANCE, NO_BALANCE)) from error
        except (PriceBelowCost, UnknownProduct) as error:
            raise order_state(PRICE_CHANGED) from error
        if settled.total != current.total:
            raise order_state(PRICE_CHANGED)
        await orders.attach_missing_codes(conn, current.id, list(code_ids))
        paid = await orders.mark_paid(conn, current.id, pool_id, settled.transaction.id)
        await orders.record_events(
            conn, list(code_ids), "SOLD", current.id, current.channel_id, actor
        )
        queued = await orders.queue_deliveries(conn, [paid])
        await _record_review(conn, paid, Outcome.ALLOW, f"Approved by {actor}.", actor)
    if queued:
        services.outbox.wake()
    await publish(services, paid)
    return paid


async def _check_payable(info: Info, order: OrderRecord) -> None:
    """Refuse, before anything is committed, an order its buyer cannot pay as placed."""
    db = info.context.services.db
    try:
        path = await orders.channel_path(db, order.channel_id)
        terms = await sales.terms(db, path, order.product_id)
        sale = sales.quote_from(terms, buyer_id=order.channel_id, quantity=order.quantity)
    except (PriceBelowCost, UnknownProduct) as error:
        raise order_state(
            PRICE_CHANGED if isinstance(error, PriceBelowCost) else NOT_SOLD
        ) from error
    if cents(sale.chain.price * order.quantity) != order.total:
        raise order_state(PRICE_CHANGED)
    if -(await ledger.balance(db, wallet(order.channel_id))) < order.total:
        raise Refused(user_error(ErrorCode.INSUFFICIENT_BALANCE, NO_BALANCE))


async def _codes_for(
    info: Info, conn: Any, order: OrderRecord, actor: str
) -> tuple[int, tuple[int, ...]]:
    """The pool and the codes the order is sold: those it holds, committed by the pool's
    actor, or for a GENERATED product new ones, issued in the caller's transaction."""
    services = info.context.services
    if order.pool_id is not None and order.reservation_ref is not None:
        # Only the order's row is locked meanwhile, which no actor's work waits for.
        answer = await services.pools.commit(order.pool_id, order.reservation_ref)
        if not isinstance(answer, Committed):
            raise order_state(HOLD_GONE)
        return order.pool_id, answer.code_ids
    product = await catalog.get_product(conn, order.product_id, viewer_path=None)
    assert product is not None, "products are never deleted"
    code_ids = await generated.issue(
        conn,
        services.keyring,
        product.id,
        order.quantity,
        validity_days=product.validity_days,
        max_uses=product.max_uses,
        with_password=False,
        actor=actor,
    )
    return await generated.generated_pool(conn, product.id), tuple(code_ids)


async def reject_order(info: Info, input: RejectOrderInput) -> RejectOrderPayload:
    viewer = require_viewer(info)
    try:
        order = await _reject(info, viewer, input)
    except Refused as refused:
        return RejectOrderPayload(user_errors=[refused.error])
    return RejectOrderPayload(order=Order.of(order))


async def _reject(info: Info, viewer: Principal, input: RejectOrderInput) -> OrderRecord:
    services = info.context.services
    order = await _reviewable(info, viewer, input.order_id)
    reason, problem = clean_reason(input.reason)
    if problem:
        raise Refused(user_error(ErrorCode.INVALID_INPUT, problem.message, problem.field))
    if order.status is OrderStatus.CANCELLED:
        return order
    if order.status is not OrderStatus.REVIEW:
        raise order_state(NOT_HELD)
    actor = viewer.actor
    async with services.db.acquire() as conn, conn.transaction():
        current = await orders.lock(conn, order.id)
        assert current is not None, "orders are never deleted"
        if current.status is OrderStatus.CANCELLED:
            return current
        if current.status is not OrderStatus.REVIEW:
            raise order_state(NOT_HELD)
        released: tuple[int, ...] = ()
        voided: tuple[int, ...] = ()
        if current.pool_id is not None and current.reservation_ref is not None:
            changed = await services.pools.release(current.pool_id, current.reservation_ref)
            released = changed.code_ids
            # Committed by an approval its buyer could not pay: never seen by anyone.
            stuck = await risk.sold_under(conn, current.pool_id, current.reservation_ref)
            if stuck:
                voided = (await services.pools.void(current.pool_id, stuck)).code_ids
        rejected = await orders.set_status(
            conn, current.id, OrderStatus.CANCELLED, f"Rejected in review: {reason}"
        )
        await orders.detach_codes(conn, current.id)
        for kind, changed_ids in (("RELEASED", released), ("VOIDED", voided)):
            if changed_ids:
                await orders.record_events(
                    conn, list(changed_ids), kind, current.id, current.channel_id, actor
                )
        await _record_review(conn, rejected, Outcome.BLOCK, f"Rejected by {actor}: {reason}", actor)
    await publish(services, rejected)
    return rejected


async def _record_review(
    conn: Any, order: OrderRecord, outcome: Outcome, reason: str, actor: str
) -> None:
    """The reviewer's decision, about the subject the order was held for."""
    held = await risk.held_event(conn, order.id)
    subject = held.subject if held else Subject(SubjectKind.CHANNEL, str(order.channel_id))
    await risk.insert_event(
        conn,
        NewRiskEvent(
            subject,
            outcome,
            reason,
            order.channel_id,
            order.product_id,
            order.id,
            held.rule_id if held else None,
            {"reviewer": actor},
        ),
    )
