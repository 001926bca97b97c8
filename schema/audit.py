"""The audit trail: verifying the hash chain over code events, and a code's life."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.audit import Break, BreakReason, Detail, Event, EventKind, Verification
from persistence.channels import ChannelRecord
from persistence.orders import OrderCodeRecord, OrderRecord
from schema import ids
from schema.channels import Channel
from schema.context import Info
from schema.orders import DeliveryMethod, Order, OrderCode

AuditBreakReason = strawberry.enum(
    BreakReason,
    name="AuditBreakReason",
    description=(
        "ENTRY_MISSING: a chain entry was deleted. LINK_BROKEN: an entry does not point at"
        " the one before (entries were changed). EVENT_MISSING: a chained event was deleted."
        " EVENT_CHANGED: an event's row no longer hashes to its entry (it was changed)."
        " UNCHAINED: an event older than a minute has no entry (the chainer is not running,"
        " or its entry was deleted)."
    ),
)
CodeEventKind = strawberry.enum(EventKind, name="CodeEventKind")

_MESSAGES = {
    BreakReason.ENTRY_MISSING: "Chain entry {seq} is missing.",
    BreakReason.LINK_BROKEN: "Chain entry {seq} does not follow the entry before it.",
    BreakReason.EVENT_MISSING: "The event of chain entry {seq} is missing.",
    BreakReason.EVENT_CHANGED: "The event of chain entry {seq} was changed after it was chained.",
    BreakReason.UNCHAINED: "An event has not been chained within a minute.",
}


@strawberry.type(description="The first place where the audit chain does not hold.")
class AuditBreak:
    record: strawberry.Private[Break]

    @strawberry.field
    def reason(self) -> AuditBreakReason:  # type: ignore[valid-type]
        return self.record.reason

    @strawberry.field(
        description="The chain entry's position, 1 for the first (for ENTRY_MISSING, the"
        " missing one); null for UNCHAINED."
    )
    def seq(self) -> int | None:
        return self.record.seq

    @strawberry.field(description="The event concerned, when there is one.")
    def event_id(self) -> strawberry.ID | None:
        event = self.record.event_id
        return ids.encode("CodeEvent", event) if event is not None else None

    @strawberry.field(
        description="The code of that event, when its row is there: `codeTrace` shows it."
    )
    def code_id(self) -> strawberry.ID | None:
        code = self.record.code_id
        return ids.encode("Code", code) if code is not None else None

    @strawberry.field
    def message(self) -> str:
        return _MESSAGES[self.record.reason].format(seq=self.record.seq)


@strawberry.type(description="The result of walking the audit chain from its first entry.")
class AuditVerification:
    record: strawberry.Private[Verification]

    @strawberry.field(description="The chain holds and no old event is left out of it.")
    def ok(self) -> bool:
        return self.record.ok

    @strawberry.field(description="How many chain entries were found intact.")
    def checked(self) -> int:
        return self.record.checked

    @strawberry.field(description="Where the chain first fails to hold; null when `ok`.")
    def first_broken_at(self) -> AuditBreak | None:
        broken = self.record.broken
        return AuditBreak(record=broken) if broken is not None else None

    @strawberry.field(
        description="Events not chained yet, new ones included (the chainer adds them"
        " within a second or so)."
    )
    def unchained(self) -> int:
        return self.record.unchained


@strawberry.type(description="The merchant where a code was redeemed.")
class CodeEventMerchant:
    id: strawberry.ID
    name: str


@strawberry.type(description="One step in a code's life.")
class CodeEvent:
    event: strawberry.Private[Event]
    detail: strawberry.Private[Detail]
    order_record: strawberry.Private[OrderRecord | None]
    channel_record: strawberry.Private[ChannelRecord | None]
    merchant_name: strawberry.Private[str | None]
    is_chained: strawberry.Private[bool]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("CodeEvent", self.event.id)

    @strawberry.field
    def kind(self) -> CodeEventKind:  # type: ignore[valid-type]
        return EventKind(self.event.kind)

    @strawberry.field(description="When it happened.")
    def at(self) -> datetime:
        return self.event.created_at

    @strawberry.field(
        description="Who did it: `user:<n>` or `api-key:<n>` for a staff user or an API key,"
        " or the part of the system (`outbox:<METHOD>`, `expiry`, `supplier:<n>`, ...)."
    )
    def actor(self) -> str | None:
        return self.event.actor

    @strawberry.field(description="The order it happened for.")
    def order(self) -> Order | None:
        return Order.of(self.order_record) if self.order_record is not None else None

    @strawberry.field(description="The channel it happened for (the order's).")
    def channel(self) -> Channel | None:
        return Channel(record=self.channel_record) if self.channel_record is not None else None

    @strawberry.field(description="DELIVERED: how the code went out.")
    def method(self) -> DeliveryMethod | None:  # type: ignore[valid-type]
        return self.detail.method

    @strawberry.field(description="FROZEN, UNFROZEN, VOIDED: why, when one was given.")
    def reason(self) -> str | None:
        return self.detail.reason

    @strawberry.field(description="REDEEMED: the region the merchant gave.")
    def region(self) -> str | None:
        return self.detail.region

    @strawberry.field(description="REDEEMED: the uses the code had left after this one.")
    def uses_left(self) -> int | None:
        return self.detail.uses_left

    @strawberry.field(description="REDEEMED: where.")
    def merchant(self) -> CodeEventMerchant | None:
        merchant = self.detail.merchant_id
        if merchant is None or self.merchant_name is None:
            return None
        return CodeEventMerchant(id=ids.encode("Merchant", merchant), name=self.merchant_name)

    @strawberry.field(description="Whether the audit chain holds the event yet.")
    def chained(self) -> bool:
        return self.is_chained


@strawberry.type(description="A code and its events, oldest first.")
class CodeTrace:
    code_record: strawberry.Private[OrderCodeRecord]
    event_list: strawberry.Private[list[CodeEvent]]

    @strawberry.field
    def code(self) -> OrderCode:
        return OrderCode(record=self.code_record)

    @strawberry.field
    def events(self) -> list[CodeEvent]:
        return self.event_list


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description="Platform owners, operators and finance staff: walk the hash chain over"
        " the code events and report the first place where it does not hold."
    )
    async def audit_verify(self, info: Info) -> AuditVerification:
        from resolvers.audit import audit_verify

        return await audit_verify(info)

    @strawberry.field(
        description="A code's life: imported, generated or bought, reserved, sold, delivered,"
        " revealed, redeemed, frozen, voided, with who and when. The platform traces any"
        " code; another channel the codes of its subtree's orders (null for others)."
    )
    async def code_trace(self, info: Info, code_id: strawberry.ID) -> CodeTrace | None:
        from resolvers.audit import code_trace

        return await code_trace(info, code_id)
