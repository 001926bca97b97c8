"""Cancelling an unpaid order and refunding a paid one.

Who may:

- ``cancelOrder``: the channel that placed the order or any channel above it, by an
  OWNER, FINANCE or OPERATOR. Only an order AWAITING_PAYMENT is cancelled.
- ``retryFulfilment`` (补单): the buyer's channel or one above it, by an OWNER, FINANCE or
  OPERATOR. Only a FAILED supplier order is placed again, paid again from the buyer's
  wallet, under the same supplier ref.
- ``refundOrder``: a channel above the buyer (the platform included), by an OWNER or
  FINANCE. The buyer cannot refund itself: it holds the plaintext codes, so the decision
  to take them back and return the money is its seller's. Only a PAID order is refunded,
  and as a whole (the ledger reverses a sale exactly, never in parts).

Both are idempotent: cancelling a CANCELLED order or refunding a REFUNDED one returns it
unchanged. Both first ask the pool's actor (release, void: each idempotent), then change
the order in one transaction under its row lock, so a crash in between leaves a state
the same call completes.
"""

from __future__ import annotations

from domain import ledger as ledger_rules
from domain.access import Principal, Role
from domain.orders import OrderStatus
from persistence import codes, orders, sales
from persistence.ledger import InsufficientBalance
from persistence.orders import OrderRecord
from resolvers import realtime
from resolvers.order_payments import publish
from schema import ids
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, Refused, UserError, order_state, user_error
from schema.orders import (
    CancelOrderInput,
    CancelOrderPayload,
    DeliveredCode,
    Order,
    RefundOrderInput,
    RefundOrderPayload,
    RetryFulfilmentInput,
    RetryFulfilmentPayload,
)

CANCEL_ROLES = frozenset({Role.OWNER, Role.FINANCE, Role.OPERATOR})
REFUND_ROLES = frozenset({Role.OWNER, Role.FINANCE})

NOT_FOUND = "No such order."
NOT_CANCELLABLE = "Only an order awaiting payment can be cancelled."
PAYMENT_ARRIVING = "A payment for this order is being applied; it cannot be cancelled."
NOT_REFUNDABLE = "Only a paid order can be refunded."
WHOLE_ORDER = "A refund takes back all of the order's codes: give all of them, or none."


async def _find(info: Info, viewer: Principal, order_id: str) -> OrderRecord:
    key = ids.decode("Order", order_id)
    found = (
        await orders.get_in_subtree(info.context.services.db, key, viewer.channel_path)
        if key
        else None
    )
    if found is None:
        raise Refused(user_error(ErrorCode.NOT_FOUND, NOT_FOUND, "orderId"))
    return found


def _reason(reason: str | None) -> str | None:
    cleaned, problem = ledger_rules.clean_memo(reason, "reason")
    if problem:
        raise Refused(user_error(ErrorCode.INVALID_INPUT, problem.message, problem.field))
    return cleaned


async def cancel_order(info: Info, input: CancelOrderInput) -> CancelOrderPayload:
    viewer = require_viewer(info)
    try:
        order = await _cancel(info, viewer, input)
    except Refused as refused:
        return CancelOrderPayload(user_errors=[refused.error])
    return CancelOrderPayload(order=Order.of(order))


async def _cancel(info: Info, viewer: Principal, input: CancelOrderInput) -> OrderRecord:
    services = info.context.services
    order = await _find(info, viewer, input.order_id)
    if viewer.role not in CANCEL_ROLES:
        raise Refused(
            user_error(ErrorCode.FORBIDDEN, "Your role may not cancel orders.", "orderId")
        )
    reason = _reason(input.reason)
    if order.status is OrderStatus.CANCELLED:
        return order
    if order.status is not OrderStatus.AWAITING_PAYMENT:
        raise order_state(NOT_CANCELLABLE)
    released: tuple[int, ...] = ()
    if order.pool_id is not None and order.reservation_ref is not None:
        # Released before the order changes: a payment's commit that comes after this
        # finds nothing reserved, and one that came before left sold codes, seen below.
        released = (await services.pools.release(order.pool_id, order.reservation_ref)).code_ids
    async with services.db.acquire() as conn, conn.transaction():
        current = await orders.lock(conn, order.id)
        assert current is not None, "orders are never deleted"
        if current.status is OrderStatus.CANCELLED:
            return current
        if current.status is not OrderStatus.AWAITING_PAYMENT:
            raise order_state(NOT_CANCELLABLE)
        if (
            current.pool_id is not None
            and current.reservation_ref is not None
            and await orders.sold_under(conn, current.pool_id, current.reservation_ref)
        ):
            raise order_state(PAYMENT_ARRIVING)
        cancelled = await orders.set_status(
            conn, current.id, OrderStatus.CANCELLED, reason or "Cancelled before payment."
        )
        await orders.detach_codes(conn, current.id)
        if released:
            await orders.record_events(
                conn, list(released), "RELEASED", current.id, current.channel_id, viewer.actor
            )
    await publish(services, cancelled)
    return cancelled


async def refund_order(info: Info, input: RefundOrderInput) -> RefundOrderPayload:
    viewer = require_viewer(info)
    try:
        order = await _refund(info, viewer, input)
    except Refused as refused:
        return RefundOrderPayload(user_errors=[refused.error])
    return RefundOrderPayload(order=Order.of(order))


async def _refund(info: Info, viewer: Principal, input: RefundOrderInput) -> OrderRecord:
    services = info.context.services
    order = await _find(info, viewer, input.order_id)
    if order.channel_id == viewer.channel_id or viewer.role not in REFUND_ROLES:
        raise Refused(
            user_error(
                ErrorCode.FORBIDDEN,
                "Orders are refunded by the buyer's seller: an owner or finance staff "
                "of a channel above it.",
                "orderId",
            )
        )
    reason = _reason(input.reason)
    code_ids = await orders.code_ids_of(services.db, order.id)
    if input.code_ids is not None:
        given = {ids.decode("Code", c) for c in input.code_ids}
        if given != set(code_ids):
            raise Refused(user_error(ErrorCode.INVALID_INPUT, WHOLE_ORDER, "codeIds"))
    if order.status is OrderStatus.REFUNDED and order.refund_transaction_id is not None:
        return order
    if order.status is not OrderStatus.PAID:
        raise order_state(NOT_REFUNDABLE)
    assert order.pool_id is not None, "a paid order was sold from a pool"
    await services.pools.void(order.pool_id, code_ids)
    async with services.db.acquire() as conn, conn.transaction():
        current = await orders.lock(conn, order.id)
        assert current is not None, "orders are never deleted"
        if current.status is OrderStatus.REFUNDED and current.refund_transaction_id:
            return current
        if current.status is not OrderStatus.PAID or current.sale_transaction_id is None:
            raise order_state(NOT_REFUNDABLE)
        reversal = await sales.refund(conn, current.sale_transaction_id, f"order:{current.id}")
        refunded = await orders.set_status(
            conn, current.id, OrderStatus.REFUNDED, reason or "Refunded.", reversal.id
        )
        voided = await orders.voided_code_ids(conn, current.id)
        await orders.record_events(
            conn, voided, "VOIDED", current.id, current.channel_id, viewer.actor
        )
    await publish(services, refunded)
    return refunded


async def retry_fulfilment(info: Info, input: RetryFulfilmentInput) -> RetryFulfilmentPayload:
    viewer = require_viewer(info)
    services = info.context.services
    try:
        order = await _find(info, viewer, input.order_id)
    except Refused as refused:
        return RetryFulfilmentPayload(user_errors=[refused.error])
    if viewer.role not in CANCEL_ROLES:
        return RetryFulfilmentPayload(
            user_errors=[
                user_error(ErrorCode.FORBIDDEN, "Your role may not place orders again.", "orderId")
            ]
        )
    try:
        outcome = await realtime.re_place(services, order, viewer.actor)
    except InsufficientBalance:
        return RetryFulfilmentPayload(
            user_errors=[
                user_error(ErrorCode.INSUFFICIENT_BALANCE, "The balance cannot pay for this order.")
            ]
        )
    if isinstance(outcome, UserError):
        return RetryFulfilmentPayload(user_errors=[outcome])
    if isinstance(outcome, realtime.Failed):
        return RetryFulfilmentPayload(order=Order.of(outcome.record), user_errors=[outcome.error])
    delivered: list[DeliveredCode] = []
    if outcome.record.channel_id == viewer.channel_id:
        plain = await codes.open_sealed(services.db, services.keyring, outcome.sealed)
        delivered = [DeliveredCode.of(p) for p in plain]
    return RetryFulfilmentPayload(order=Order.of(outcome.record), codes=delivered)
