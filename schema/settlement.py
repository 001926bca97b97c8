"""Split rules: their type, inputs and root fields."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain.settlement import SplitKind as DomainSplitKind
from persistence.split_rules import SplitRuleRecord
from schema import ids
from schema.context import Info
from schema.errors import UserError

if TYPE_CHECKING:
    from schema.catalog import Product
    from schema.channels import Channel

SplitKind = strawberry.enum(
    DomainSplitKind,
    description=(
        "PRICE_CHAIN: the supplier gets the cost, the platform its margin, each agent the "
        "difference between its price and its child's. RATIO: preset percentages of the sale."
    ),
)


@strawberry.type(description="How the money of a sale is split, for a product or a channel.")
class SplitRule:
    record: strawberry.Private[SplitRuleRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("SplitRule", self.record.id)

    @strawberry.field
    def kind(self) -> SplitKind:  # type: ignore[valid-type]
        return self.record.kind

    @strawberry.field
    def supplier_percent(self) -> Decimal | None:
        return self.record.supplier_percent

    @strawberry.field
    def platform_percent(self) -> Decimal | None:
        return self.record.platform_percent

    @strawberry.field(description="The agents' shares by level, level 1 first.")
    def agent_percents(self) -> list[Decimal]:
        return list(self.record.agent_percents)

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.record.updated_at

    @strawberry.field
    async def product(
        self, info: Info
    ) -> Annotated[Product, strawberry.lazy("schema.catalog")] | None:
        from resolvers.settlement import resolve_rule_product

        return await resolve_rule_product(info, self.record)

    @strawberry.field
    async def channel(
        self, info: Info
    ) -> Annotated[Channel, strawberry.lazy("schema.channels")] | None:
        from resolvers.settlement import resolve_rule_channel

        return await resolve_rule_channel(info, self.record)


@strawberry.input(
    description="A rule for a product (it wins) or for a channel (it covers the channel's "
    "subtree unless a deeper channel has its own). Shares are percentages adding up to 100; "
    "agents' shares of levels a sale's path does not reach go to the platform."
)
class SetSplitRuleInput:
    kind: SplitKind  # type: ignore[valid-type]
    product_id: strawberry.ID | None = None
    channel_id: strawberry.ID | None = None
    supplier_percent: Decimal | None = None
    platform_percent: Decimal | None = None
    agent_percents: list[Decimal] | None = None
    clear: bool = strawberry.field(default=False, description="Remove the rule instead.")


@strawberry.type
class SetSplitRulePayload:
    split_rule: SplitRule | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SettlementQuery:
    @strawberry.field(description="Every split rule (platform only).")
    async def split_rules(self, info: Info) -> list[SplitRule]:
        from resolvers.settlement import split_rules

        return await split_rules(info)


@strawberry.type
class SettlementMutation:
    @strawberry.mutation(description="Set (or clear) how sales of a product or channel split.")
    async def set_split_rule(self, info: Info, input: SetSplitRuleInput) -> SetSplitRulePayload:
        from resolvers.settlement import set_split_rule

        return await set_split_rule(info, input)
