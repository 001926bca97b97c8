"""Orders: types, inputs, payloads and root fields."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain.orders import DeliveryMethod as DomainDeliveryMethod
from domain.orders import OrderStatus as DomainOrderStatus
from domain.orders import PaymentMethod as DomainPaymentMethod
from persistence.codes import PlainCode
from persistence.orders import OrderCodeRecord, OrderRecord
from persistence.payments import PaymentOutcome as DomainPaymentOutcome
from persistence.payments import PaymentRecord
from persistence.payments import PaymentSource as DomainPaymentSource
from schema import ids
from schema.context import Info
from schema.errors import UserError
from schema.pagination import Connection

if TYPE_CHECKING:
    from schema.catalog import Product
    from schema.channels import Channel

OrderStatus = strawberry.enum(DomainOrderStatus)
PaymentMethod = strawberry.enum(DomainPaymentMethod)
DeliveryMethod = strawberry.enum(DomainDeliveryMethod)
PaymentSource = strawberry.enum(DomainPaymentSource)
PaymentOutcome = strawberry.enum(
    DomainPaymentOutcome,
    description="FULFILLED: it paid for the order's codes. CREDITED: the order could not "
    "take it (no stock after expiry, cancelled, paid already), so it went to the "
    "channel's balance.",
)


@strawberry.enum
class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    DEAD = "DEAD"


@strawberry.type(description="A code of an order as listings show it: its last characters.")
class OrderCode:
    record: strawberry.Private[OrderCodeRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Code", self.record.id)

    @strawberry.field
    def masked(self) -> str:
        return "••••" + self.record.last4

    @strawberry.field
    def status(self) -> str:
        return self.record.status.upper()

    @strawberry.field
    def expires_at(self) -> datetime | None:
        return self.record.expires_at


@strawberry.type(description="A code in plaintext, for the channel that ordered it only.")
class DeliveredCode:
    # Plain values, set once (``of``): an order's answer carries many, and a field read
    # from an attribute costs a fraction of one strawberry resolves through a method.
    id: strawberry.ID
    code: str
    password: str | None
    expires_at: datetime | None

    @classmethod
    def of(cls, plain: PlainCode) -> DeliveredCode:
        return cls(
            id=strawberry.ID(ids.encode("Code", plain.id)),
            code=plain.code,
            password=plain.password,
            expires_at=plain.expires_at,
        )


@strawberry.type
class Delivery:
    method: DeliveryMethod  # type: ignore[valid-type]
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    url: str | None = strawberry.field(
        default=None,
        description="LINK: the buyer's page, for the ordering channel only (a path unless "
        "the server's public URL is set).",
    )
    target: str | None = strawberry.field(
        default=None, description="EMAIL and SMS: the address or number, masked."
    )
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = strawberry.field(
        default=None, description="When the next attempt is due, while one is."
    )


@strawberry.type
class Order:
    record: strawberry.Private[OrderRecord]
    # Plain values, set once (``of``, and see DeliveredCode); what needs a read stays a
    # resolver.
    id: strawberry.ID
    status: OrderStatus  # type: ignore[valid-type]
    payment: PaymentMethod  # type: ignore[valid-type]
    quantity: int
    unit_price: Decimal
    total: Decimal
    idempotency_key: str
    created_at: datetime
    paid_at: datetime | None
    payment_reference: str | None = strawberry.field(
        description="EXTERNAL payment: the reference to pay under (the gateway's callback "
        "names it)."
    )
    expires_at: datetime | None = strawberry.field(
        description="EXTERNAL payment: when the reservation lapses if the order is unpaid."
    )
    status_reason: str | None = strawberry.field(
        description="Why the order is in its status: expiry, a cancel or refund reason, or "
        "a payment credited to the balance."
    )

    @classmethod
    def of(cls, record: OrderRecord) -> Order:
        return cls(
            record=record,
            id=strawberry.ID(ids.encode("Order", record.id)),
            status=record.status,
            payment=record.payment,
            quantity=record.quantity,
            unit_price=record.unit_price,
            total=record.total,
            idempotency_key=record.idempotency_key,
            created_at=record.created_at,
            paid_at=record.paid_at,
            payment_reference=record.payment_reference,
            expires_at=record.expires_at,
            status_reason=record.status_reason,
        )

    @strawberry.field(description="Payments received for the order.")
    async def payments(self, info: Info) -> list[Payment]:
        from persistence import payments

        rows = await payments.of_order(info.context.services.db, self.record.id)
        return [Payment(record=r) for r in rows]

    @strawberry.field(description="The order's codes, masked; `revealCodes` shows them.")
    async def codes(self, info: Info) -> list[OrderCode]:
        from resolvers.orders import resolve_codes

        return await resolve_codes(info, self.record)

    @strawberry.field(
        description="How the codes went out: API (in placeOrder's answer), then each queued "
        "delivery with its attempts. FAILED: the last attempt failed and another is due at "
        "`nextAttemptAt`; DEAD: given up."
    )
    async def deliveries(self, info: Info) -> list[Delivery]:
        from resolvers.deliveries import deliveries_of

        return await deliveries_of(info, self.record)

    @strawberry.field
    async def product(
        self, info: Info
    ) -> Annotated[Product, strawberry.lazy("schema.catalog")] | None:
        from resolvers.orders import resolve_product

        return await resolve_product(info, self.record)

    @strawberry.field
    async def channel(self, info: Info) -> Annotated[Channel, strawberry.lazy("schema.channels")]:
        from resolvers.channels import resolve_channel_of

        return await resolve_channel_of(info, self.record.channel_id)


@strawberry.type(description="A payment received for an order.")
class Payment:
    record: strawberry.Private[PaymentRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Payment", self.record.id)

    @strawberry.field(description="The gateway's transaction id (`manual:` for confirmations).")
    def transaction_id(self) -> str:
        return self.record.transaction_id

    @strawberry.field
    def amount(self) -> Decimal:
        return self.record.amount

    @strawberry.field
    def source(self) -> PaymentSource:  # type: ignore[valid-type]
        return self.record.source

    @strawberry.field
    def outcome(self) -> PaymentOutcome:  # type: ignore[valid-type]
        return self.record.outcome

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at


@strawberry.input
class BuyerInput:
    ip: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    region: str | None = None
    customer_group: str | None = None
    email: str | None = None
    phone: str | None = None


@strawberry.input
class DeliveryInput:
    method: DeliveryMethod  # type: ignore[valid-type]
    target: str | None = None


@strawberry.input
class PlaceOrderInput:
    idempotency_key: str = strawberry.field(
        description="Retrying with the same key and input returns the first result."
    )
    product_id: strawberry.ID
    quantity: int
    payment: PaymentMethod = DomainPaymentMethod.BALANCE  # type: ignore[valid-type]
    buyer: BuyerInput | None = None
    delivery: list[DeliveryInput] | None = strawberry.field(
        default=None, description="Defaults to API: the codes come back in the payload."
    )


@strawberry.type
class PlaceOrderPayload:
    order: Order | None = None
    codes: list[DeliveredCode] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevealCodesInput:
    order_id: strawberry.ID


@strawberry.type
class RevealCodesPayload:
    order: Order | None = None
    codes: list[DeliveredCode] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ConfirmPaymentInput:
    order_id: strawberry.ID
    reference: str = strawberry.field(
        description="The payment's own reference (a bank transfer's, say): confirming it "
        "again changes nothing."
    )


@strawberry.type
class ConfirmPaymentPayload:
    order: Order | None = None
    payment: Payment | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CancelOrderInput:
    order_id: strawberry.ID
    reason: str | None = None


@strawberry.type
class CancelOrderPayload:
    order: Order | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RefundOrderInput:
    order_id: strawberry.ID
    code_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="All of the order's codes, or omitted: refunds are whole."
    )
    reason: str | None = None


@strawberry.type
class RefundOrderPayload:
    order: Order | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RetryFulfilmentInput:
    order_id: strawberry.ID


@strawberry.type
class RetryFulfilmentPayload:
    order: Order | None = None
    codes: list[DeliveredCode] = strawberry.field(
        default_factory=list,
        description="The codes in plaintext, for the channel that placed the order only.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class OrderFilter:
    status: OrderStatus | None = None  # type: ignore[valid-type]
    product_id: strawberry.ID | None = None


@strawberry.type
class OrdersQuery:
    @strawberry.field(description="An order of the caller's subtree.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        from resolvers.orders import order

        return await order(info, id)

    @strawberry.field(description="Orders of the caller's subtree, newest first.")
    async def orders(
        self,
        info: Info,
        filter: OrderFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Order]:
        from resolvers.orders import orders_page

        return await orders_page(info, filter, first, after)


@strawberry.type
class OrdersMutation:
    @strawberry.mutation(
        description="Buy codes: paid from the wallet and delivered in the payload, or held "
        "for an EXTERNAL payment."
    )
    async def place_order(self, info: Info, input: PlaceOrderInput) -> PlaceOrderPayload:
        from resolvers.orders import place_order

        return await place_order(info, input)

    @strawberry.mutation(description="The plaintext codes of an order the caller placed.")
    async def reveal_codes(self, info: Info, input: RevealCodesInput) -> RevealCodesPayload:
        from resolvers.orders import reveal_codes

        return await reveal_codes(info, input)

    @strawberry.mutation(
        description="Platform owners and finance: confirm an external payment by hand, "
        "with the same effect as the gateway's callback."
    )
    async def confirm_payment(
        self, info: Info, input: ConfirmPaymentInput
    ) -> ConfirmPaymentPayload:
        from resolvers.payments import confirm_payment

        return await confirm_payment(info, input)

    @strawberry.mutation(description="Cancel an order awaiting payment; its codes go back.")
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CancelOrderPayload:
        from resolvers.order_changes import cancel_order

        return await cancel_order(info, input)

    @strawberry.mutation(
        description="Refund a paid order: its codes are voided and the sale is reversed."
    )
    async def refund_order(self, info: Info, input: RefundOrderInput) -> RefundOrderPayload:
        from resolvers.order_changes import refund_order

        return await refund_order(info, input)

    @strawberry.mutation(
        description="Place a FAILED supplier order again (补单) under the same supplier ref,"
        " paid again from the buyer's balance: the supplier never sells it twice."
    )
    async def retry_fulfilment(
        self, info: Info, input: RetryFulfilmentInput
    ) -> RetryFulfilmentPayload:
        from resolvers.order_changes import retry_fulfilment

        return await retry_fulfilment(info, input)


@strawberry.type
class OrdersSubscription:
    @strawberry.subscription(description="Orders of the caller's subtree as their status changes.")
    async def order_updated(
        self, info: Info, order_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Order, None]:
        from resolvers.orders import order_updated

        async for updated in order_updated(info, order_id):
            yield updated
