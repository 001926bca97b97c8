"""Redemption (核销): merchants, their authorised channels, and each use of a code."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from persistence.merchants import MerchantRecord
from persistence.redemptions import RedemptionRecord
from schema import ids
from schema.context import Info
from schema.errors import UserError
from schema.pagination import Connection

if TYPE_CHECKING:
    from schema.catalog import Product
    from schema.channels import Channel

ChannelType = Annotated["Channel", strawberry.lazy("schema.channels")]
ProductType = Annotated["Product", strawberry.lazy("schema.catalog")]


@strawberry.type(
    description="A business that redeems codes at its shops. It may redeem codes sold"
    " through the channels it is authorised for and their subtrees; others are frozen."
)
class Merchant:
    record: strawberry.Private[MerchantRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Merchant", self.record.id)

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field(description="Where it redeems (ISO 3166-2); empty: anywhere.")
    def regions(self) -> list[str]:
        return self.record.regions

    @strawberry.field(description="The channel that manages it.")
    async def channel(self, info: Info) -> ChannelType:
        from resolvers.redemption import merchant_channel

        return await merchant_channel(info, self.record)

    @strawberry.field(description="The channels whose codes it may redeem (with subtrees).")
    async def authorized_channels(self, info: Info) -> list[ChannelType]:
        from resolvers.redemption import authorized_channels

        return await authorized_channels(info, self.record)


@strawberry.type(description="A code as a redemption shows it: its last characters.")
class RedeemedCode:
    id: strawberry.ID
    masked: str


@strawberry.type(description="One use of a code at a merchant.")
class Redemption:
    record: strawberry.Private[RedemptionRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Redemption", self.record.id)

    @strawberry.field(description="Uses the code has left after this one.")
    def uses_left(self) -> int:
        return self.record.uses_left

    @strawberry.field
    def redeemed_at(self) -> datetime:
        return self.record.redeemed_at

    @strawberry.field
    def region(self) -> str | None:
        return self.record.region

    @strawberry.field
    def code(self) -> RedeemedCode:
        return RedeemedCode(
            id=strawberry.ID(ids.encode("Code", self.record.code_id)),
            masked="••••" + self.record.last4,
        )

    @strawberry.field
    def merchant_id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode("Merchant", self.record.merchant_id))


@strawberry.input
class CreateMerchantInput:
    name: str
    regions: list[str] | None = None
    authorized_channel_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Channels of the caller's subtree; empty: none yet."
    )
    channel_id: strawberry.ID | None = strawberry.field(
        default=None, description="The managing channel; defaults to the caller's own."
    )


@strawberry.type
class CreateMerchantPayload:
    merchant: Merchant | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetMerchantChannelsInput:
    merchant_id: strawberry.ID
    channel_ids: list[strawberry.ID]


@strawberry.type
class SetMerchantChannelsPayload:
    merchant: Merchant | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RedeemCodeInput:
    idempotency_key: str = strawberry.field(
        description="A retried redemption with the same key counts once."
    )
    code: str | None = strawberry.field(default=None, description="The code as given.")
    password: str | None = None
    token: str | None = strawberry.field(
        default=None,
        description="Instead of code and password: the token of a delivery link, as its QR"
        " code carries it (scan to redeem).",
    )
    merchant_id: strawberry.ID | None = strawberry.field(
        default=None, description="The verifier's own merchant (the only one it may name)."
    )
    region: str | None = None
    device_id: str | None = strawberry.field(
        default=None, description="The redeeming device, for the guessing defence."
    )


@strawberry.type
class RedeemCodePayload:
    redemption: Redemption | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetProductRedeemableInput:
    product_id: strawberry.ID
    redeemable: bool


@strawberry.type
class SetProductRedeemablePayload:
    product: ProductType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RedemptionFilter:
    merchant_id: strawberry.ID | None = None
    code_id: strawberry.ID | None = None


@strawberry.type
class RedemptionQuery:
    @strawberry.field(description="Merchants managed in the caller's subtree.")
    async def merchants(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Merchant]:
        from resolvers.redemption import merchants_page

        return await merchants_page(info, first, after)

    @strawberry.field(
        description="Redemptions at merchants of the caller's subtree or of codes sold"
        " there, newest first."
    )
    async def redemptions(
        self,
        info: Info,
        filter: RedemptionFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Redemption]:
        from resolvers.redemption import redemptions_page

        return await redemptions_page(info, filter, first, after)


@strawberry.type
class RedemptionMutation:
    @strawberry.mutation(description="Add a merchant that redeems codes.")
    async def create_merchant(
        self, info: Info, input: CreateMerchantInput
    ) -> CreateMerchantPayload:
        from resolvers.redemption import create_merchant

        return await create_merchant(info, input)

    @strawberry.mutation(description="Replace the channels a merchant may redeem codes of.")
    async def set_merchant_channels(
        self, info: Info, input: SetMerchantChannelsInput
    ) -> SetMerchantChannelsPayload:
        from resolvers.redemption import set_merchant_channels

        return await set_merchant_channels(info, input)

    @strawberry.mutation(
        description="Redeem (核销) a code once, as a merchant's verifier: its validity,"
        " uses, state and the channel it was sold through are checked."
    )
    async def redeem_code(self, info: Info, input: RedeemCodeInput) -> RedeemCodePayload:
        from resolvers.redemption import redeem_code

        return await redeem_code(info, input)

    @strawberry.mutation(description="Whether a product's codes are redeemed on this platform.")
    async def set_product_redeemable(
        self, info: Info, input: SetProductRedeemableInput
    ) -> SetProductRedeemablePayload:
        from resolvers.redemption import set_product_redeemable

        return await set_product_redeemable(info, input)
