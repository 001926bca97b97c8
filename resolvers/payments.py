"""Where payments come in: the gateway's signed callback and confirmation by hand.

``POST /payments/callback`` answers 401 for a missing or wrong signature, 400 for a body
that is not a notification or an amount other than the order's total, 404 for an
unknown reference, 409 for a transaction id that paid another order, and 200 once the
payment is applied (or was before: the gateway may repeat a notification any number of
times). Nothing changes unless the answer is 200.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain import payments as rules
from domain.access import Role
from domain.orders import PaymentMethod
from persistence import orders
from persistence.payments import PaymentSource
from resolvers.order_payments import Applied, PaymentConflict, apply_payment
from schema import ids
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, user_error
from schema.orders import ConfirmPaymentInput, ConfirmPaymentPayload, Order, Payment

if TYPE_CHECKING:
    from server import Services

log = logging.getLogger(__name__)

GATEWAY_ACTOR = "payment-gateway"
CONFIRM_ROLES = frozenset({Role.OWNER, Role.FINANCE})


async def payment_callback(request: Request) -> Response:
    services: Services = request.app.state.services
    body = await request.body()
    secret = services.settings.resolved_payment_secret()
    if not rules.signature_ok(secret, body, request.headers.get("x-signature")):
        return _answer(401, "The signature is missing or wrong.")
    try:
        notice = rules.parse(body)
    except rules.BadNotification as error:
        return _answer(400, str(error))
    order = await orders.by_payment_reference(services.db, notice.reference)
    if order is None:
        return _answer(404, "No order has this payment reference.")
    if not notice.succeeded:
        # A failed or pending attempt changes nothing: the order waits until it expires.
        return JSONResponse({"status": "ignored", "order": ids.encode("Order", order.id)})
    if notice.amount != order.total:
        return _answer(400, f"The amount must be the order's total, {order.total}.")
    try:
        applied = await apply_payment(
            services,
            order,
            notice.transaction_id,
            notice.amount,
            PaymentSource.CALLBACK,
            GATEWAY_ACTOR,
        )
    except PaymentConflict:
        return _answer(409, "This transaction id paid another order.")
    return JSONResponse(_described(applied))


def _answer(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _described(applied: Applied) -> dict[str, object]:
    return {
        "status": "ok",
        "order": ids.encode("Order", applied.order.id),
        "orderStatus": applied.order.status.value,
        "outcome": applied.payment.outcome.value,
        "replayed": applied.replayed,
    }


async def confirm_payment(info: Info, input: ConfirmPaymentInput) -> ConfirmPaymentPayload:
    """The platform's owners and finance staff confirm a payment the gateway did not
    report (a bank transfer, say). ``reference`` names that payment: confirming it again
    changes nothing; another reference is another payment (credited to the channel's
    wallet when the order is paid already)."""
    viewer = require_viewer(info)
    services = info.context.services
    key = ids.decode("Order", input.order_id)
    order = await orders.get_in_subtree(services.db, key, viewer.channel_path) if key else None
    if order is None:
        return ConfirmPaymentPayload(
            user_errors=[user_error(ErrorCode.NOT_FOUND, "No such order.", "orderId")]
        )
    if not viewer.is_platform or viewer.role not in CONFIRM_ROLES:
        return ConfirmPaymentPayload(
            user_errors=[
                user_error(
                    ErrorCode.FORBIDDEN,
                    "Only the platform's owners and finance staff confirm payments.",
                )
            ]
        )
    if order.payment is not PaymentMethod.EXTERNAL:
        # Paid from the wallet when it was placed: a confirmation would credit its total
        # to the wallet a second time.
        return ConfirmPaymentPayload(
            user_errors=[
                user_error(
                    ErrorCode.ORDER_STATE,
                    "Only orders paid through the payment gateway (EXTERNAL) take a payment.",
                    "orderId",
                )
            ]
        )
    reference = input.reference.strip()
    if not 1 <= len(reference) <= rules.MAX_MANUAL_REFERENCE:
        return ConfirmPaymentPayload(
            user_errors=[
                user_error(
                    ErrorCode.INVALID_INPUT,
                    f"Give a reference of 1 to {rules.MAX_MANUAL_REFERENCE} characters.",
                    "reference",
                )
            ]
        )
    actor = f"user:{viewer.user_id}" if viewer.user_id else f"api-key:{viewer.api_key_id}"
    try:
        applied = await apply_payment(
            services,
            order,
            rules.manual_transaction_id(reference),
            order.total,
            PaymentSource.MANUAL,
            actor,
        )
    except PaymentConflict:
        return ConfirmPaymentPayload(
            user_errors=[
                user_error(
                    ErrorCode.IDEMPOTENCY_CONFLICT,
                    "This reference confirmed another order's payment.",
                    "reference",
                )
            ]
        )
    return ConfirmPaymentPayload(
        order=Order.of(applied.order), payment=Payment(record=applied.payment)
    )
