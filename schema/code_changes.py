"""Freezing, unfreezing and voiding codes in bulk: inputs, payloads and root fields."""

from __future__ import annotations

import strawberry

from schema.context import Info
from schema.errors import UserError

SELECTORS_HELP = (
    "Give exactly one of `codeIds`, `orderId`, `batchId`, `poolId` and `channelId`. A "
    "channel's owners and operators may select codes sold to orders of their subtree "
    "(`codeIds`, `orderId`, `channelId`); `batchId` and `poolId` are the platform's."
)


@strawberry.input(description="Which codes, and why. " + SELECTORS_HELP)
class CodeSelectionInput:
    code_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="These codes (at most 10,000)."
    )
    order_id: strawberry.ID | None = strawberry.field(
        default=None, description="The codes of this order."
    )
    batch_id: strawberry.ID | None = strawberry.field(
        default=None, description="The codes of this import or generation batch."
    )
    pool_id: strawberry.ID | None = strawberry.field(
        default=None, description="Every code of this pool, stock and sold."
    )
    channel_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The channel's unredeemed codes: those sold to orders of the channel "
        "and its subtree with uses left. Stock in the pools is not the channel's.",
    )
    reason: str = strawberry.field(
        description="Why, in 1 to 500 characters; kept with each code's event."
    )


@strawberry.input(description="Codes to freeze. " + SELECTORS_HELP)
class FreezeCodesInput(CodeSelectionInput):
    pass


@strawberry.input(description="Codes to unfreeze. " + SELECTORS_HELP)
class UnfreezeCodesInput(CodeSelectionInput):
    pass


@strawberry.input(description="Codes to void. " + SELECTORS_HELP)
class VoidCodesInput(CodeSelectionInput):
    pass


@strawberry.type
class CodeChangesPayload:
    changed: int = strawberry.field(default=0, description="How many codes changed state.")
    skipped: int = strawberry.field(
        default=0,
        description="How many selected codes were left as they are: reserved for an order "
        "awaiting payment (call again once it is paid or has expired), or, unfreezing, "
        "frozen from above the caller's channel.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class FreezeCodesPayload(CodeChangesPayload):
    pass


@strawberry.type
class UnfreezeCodesPayload(CodeChangesPayload):
    pass


@strawberry.type
class VoidCodesPayload(CodeChangesPayload):
    pass


@strawberry.type
class CodeChangesMutation:
    @strawberry.mutation(
        description="Freeze codes in stock or sold: they cannot be sold or redeemed until "
        "unfrozen. Codes reserved for an order awaiting payment are skipped."
    )
    async def freeze_codes(self, info: Info, input: FreezeCodesInput) -> FreezeCodesPayload:
        from resolvers.code_changes import freeze_codes

        return await freeze_codes(info, input)

    @strawberry.mutation(
        description="Return frozen codes to where they were: stock or sold. A channel lifts "
        "only freezes made by itself or its subtree."
    )
    async def unfreeze_codes(self, info: Info, input: UnfreezeCodesInput) -> UnfreezeCodesPayload:
        from resolvers.code_changes import unfreeze_codes

        return await unfreeze_codes(info, input)

    @strawberry.mutation(
        description="Void codes in stock, sold or frozen, for good. Codes reserved for an "
        "order awaiting payment are skipped."
    )
    async def void_codes(self, info: Info, input: VoidCodesInput) -> VoidCodesPayload:
        from resolvers.code_changes import void_codes

        return await void_codes(info, input)
