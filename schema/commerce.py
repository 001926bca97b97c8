"""Channel commerce: prices per level, the products a channel sees, its restrictions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from persistence.catalog import ProductRecord
from persistence.pricing import ChannelPriceRecord
from schema.catalog import Product
from schema.channels import Channel
from schema.context import Info
from schema.errors import UserError


@strawberry.type(description="A price a parent set for one of its direct children.")
class ChannelPrice:
    record: strawberry.Private[ChannelPriceRecord]
    product_record: strawberry.Private[ProductRecord]
    effective: strawberry.Private[Decimal]

    @strawberry.field
    def product(self) -> Product:
        return Product(record=self.product_record)

    @strawberry.field(description="The fixed price set; null when a markup is set instead.")
    def price(self) -> Decimal | None:
        return self.record.price

    @strawberry.field(
        description="The markup in percent on the parent's own price; null for a fixed price."
    )
    def markup_percent(self) -> Decimal | None:
        return self.record.markup_percent

    @strawberry.field(description="What the channel pays for one code, this setting applied.")
    def effective_price(self) -> Decimal:
        return self.effective

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.record.updated_at


@strawberry.type(description="What one channel of a price chain pays for a product.")
class PriceChainLevel:
    channel: Channel
    price: Decimal


# --- inputs and payloads ----------------------------------------------------------------


@strawberry.input(
    description=(
        "Set what a direct child of the caller's channel pays for a product: a fixed price"
        " or a markup on the caller's own price (exactly one), or clear what was set so"
        " that the child buys at the caller's price plus the caller's default markup."
    )
)
class SetChannelPriceInput:
    channel_id: strawberry.ID
    product_id: strawberry.ID
    price: Decimal | None = strawberry.field(
        default=None, description="At least the caller's own purchase price."
    )
    markup_percent: Decimal | None = strawberry.field(
        default=None, description="0 to 1000, at most 3 decimal places."
    )
    clear: bool = False


@strawberry.type
class SetChannelPricePayload:
    channel: Channel | None = None
    product: Product | None = None
    price: Decimal | None = strawberry.field(
        default=None, description="What the channel pays for the product now."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetChannelDefaultMarkupInput:
    markup_percent: Decimal = strawberry.field(description="0 to 1000, at most 3 decimal places.")
    channel_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the caller's own channel."
    )


@strawberry.type
class SetChannelDefaultMarkupPayload:
    channel: Channel | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetChannelProductsInput:
    channel_id: strawberry.ID = strawberry.field(
        description="A channel below the caller's own, at any depth."
    )
    product_ids: list[strawberry.ID] = strawberry.field(description="At most 1000.")
    visible: bool = strawberry.field(
        description=(
            "False hides the products for the channel and its whole subtree; true removes"
            " that hiding (what a channel further up hides stays hidden)."
        )
    )


@strawberry.type
class SetChannelProductsPayload:
    channel: Channel | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(
    description="Fields left out (null) keep their value; an empty list takes the parent's."
)
class SetChannelRestrictionsInput:
    channel_id: strawberry.ID = strawberry.field(
        description="A channel below the caller's own, at any depth."
    )
    regions: list[str] | None = strawberry.field(
        default=None, description="ISO 3166-2 codes, within those of every channel above."
    )
    customer_groups: list[str] | None = strawberry.field(
        default=None, description="Within those of every channel above."
    )


@strawberry.type
class SetChannelRestrictionsPayload:
    channel: Channel | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# --- root fields ------------------------------------------------------------------------


@strawberry.type
class CommerceQuery:
    @strawberry.field(
        description=(
            "What each channel pays for a product, from the caller's own channel down to"
            " `channelId` (the caller's own when omitted). Null when the caller cannot see"
            " the product or the channel."
        )
    )
    async def price_chain(
        self, info: Info, product_id: strawberry.ID, channel_id: strawberry.ID | None = None
    ) -> list[PriceChainLevel] | None:
        from resolvers import commerce

        return await commerce.price_chain(info, product_id, channel_id)


@strawberry.type
class CommerceMutation:
    @strawberry.mutation(
        description=(
            "Set the price a direct child of the caller's channel buys a product at (owners"
            " and operators). Never below the caller's own purchase price."
        )
    )
    async def set_channel_price(
        self, info: Info, input: SetChannelPriceInput
    ) -> SetChannelPricePayload:
        from resolvers import commerce

        return await commerce.set_channel_price(info, input)

    @strawberry.mutation(
        description=(
            "Set what a channel (the caller's own or one below it) adds to its own price"
            " for the children it has set no price for (owners and operators)."
        )
    )
    async def set_channel_default_markup(
        self, info: Info, input: SetChannelDefaultMarkupInput
    ) -> SetChannelDefaultMarkupPayload:
        from resolvers import commerce

        return await commerce.set_channel_default_markup(info, input)

    @strawberry.mutation(
        description=(
            "Hide products from a channel below the caller's, and so from its subtree, or"
            " show them again (owners and operators)."
        )
    )
    async def set_channel_products(
        self, info: Info, input: SetChannelProductsInput
    ) -> SetChannelProductsPayload:
        from resolvers import commerce

        return await commerce.set_channel_products(info, input)

    @strawberry.mutation(
        description=(
            "Set the regions and customer groups a channel below the caller's may sell to"
            " (owners and operators). Orders check every channel on the buyer's path."
        )
    )
    async def set_channel_restrictions(
        self, info: Info, input: SetChannelRestrictionsInput
    ) -> SetChannelRestrictionsPayload:
        from resolvers import commerce

        return await commerce.set_channel_restrictions(info, input)
