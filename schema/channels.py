"""The channel tree: types, inputs and payloads."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from persistence.channels import ChannelRecord
from schema import ids
from schema.context import Info
from schema.errors import UserError
from schema.pagination import Connection

if TYPE_CHECKING:
    from schema.commerce import ChannelPrice
    from schema.staff import ApiKey, User


@strawberry.type(description="A node of the sales tree: the platform, an agent, a store.")
class Channel:
    record: strawberry.Private[ChannelRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Channel", self.record.id)

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field(description="Depth in the tree: 0 for the platform, 1 for its agents.")
    def level(self) -> int:
        return self.record.level

    @strawberry.field(description="ISO 3166-2 regions this channel may sell to; empty: any.")
    def regions(self) -> list[str]:
        return self.record.regions

    @strawberry.field(description="Customer groups this channel may sell to; empty: any.")
    def customer_groups(self) -> list[str]:
        return self.record.customer_groups

    @strawberry.field(
        description=(
            "What this channel adds, in percent, to its own price for the children it has"
            " set no price for. Always 0 for the platform, whose agents buy at each"
            " product's base price unless it sets them a price."
        )
    )
    def default_markup_percent(self) -> Decimal:
        return self.record.default_markup_percent

    @strawberry.field(
        description=(
            "The prices this channel's parent set for it, by product: of the products the"
            " caller sees."
        )
    )
    async def prices(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[ChannelPrice, strawberry.lazy("schema.commerce")]]:
        from resolvers.commerce import resolve_channel_prices

        return await resolve_channel_prices(info, self.record, first, after)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(description="The parent, when it is within the caller's subtree.")
    async def parent(self, info: Info) -> Channel | None:
        from resolvers.channels import resolve_parent

        return await resolve_parent(info, self.record)

    @strawberry.field(
        description="The channels from the caller's own channel down to this one, both included."
    )
    async def path(self, info: Info) -> list[Channel]:
        from resolvers.channels import resolve_path

        return await resolve_path(info, self.record)

    @strawberry.field
    async def children(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Channel]:
        from resolvers.channels import resolve_children

        return await resolve_children(info, self.record, first, after)

    @strawberry.field(description="Staff users of this channel (owners only).")
    async def users(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[User, strawberry.lazy("schema.staff")]]:
        from resolvers.staff import resolve_channel_users

        return await resolve_channel_users(info, self.record, first, after)

    @strawberry.field(description="API keys of this channel, without their secrets (owners only).")
    async def api_keys(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[ApiKey, strawberry.lazy("schema.staff")]]:
        from resolvers.staff import resolve_channel_api_keys

        return await resolve_channel_api_keys(info, self.record, first, after)

    @strawberry.field(
        description="The prepaid wallet, as the channel sees it: 0.00 before any top-up."
    )
    async def balance(self, info: Info) -> Decimal:
        from resolvers.ledger import resolve_channel_balance

        return await resolve_channel_balance(info, self.record)

    @strawberry.field(description="The margins the channel earned as an agent: 0.00 before any.")
    async def earnings(self, info: Info) -> Decimal:
        from resolvers.ledger import resolve_channel_earnings

        return await resolve_channel_earnings(info, self.record)


@strawberry.input
class CreateChannelInput:
    name: str
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the caller's own channel."
    )
    regions: list[str] | None = strawberry.field(
        default=None, description="Within the parent's; defaults to the parent's."
    )
    customer_groups: list[str] | None = strawberry.field(
        default=None, description="Within the parent's; defaults to the parent's."
    )


@strawberry.type
class CreateChannelPayload:
    channel: Channel | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
