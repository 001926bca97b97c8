"""Split rules: who may set them and how they are checked."""

from __future__ import annotations

from domain.access import Principal, Role
from domain.settlement import RatioRule, SplitKind
from persistence import channels
from persistence import split_rules as rules
from persistence.split_rules import SplitRuleRecord
from resolvers.catalog import find_product
from resolvers.channels import channel_not_found, find_channel
from schema import ids
from schema.catalog import Product
from schema.channels import Channel
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, UserError, forbidden_request, user_error
from schema.settlement import SetSplitRuleInput, SetSplitRulePayload, SplitRule

# Splitting money is the platform's finance decision.
_ROLES = frozenset({Role.OWNER, Role.FINANCE})


def _may_set(viewer: Principal) -> bool:
    return viewer.is_platform and viewer.role in _ROLES


async def split_rules(info: Info) -> list[SplitRule]:
    viewer = require_viewer(info)
    if not viewer.is_platform:
        raise forbidden_request("Only the platform sees split rules.")
    return [SplitRule(record=r) for r in await rules.all_rules(info.context.services.db)]


async def set_split_rule(info: Info, input: SetSplitRuleInput) -> SetSplitRulePayload:
    viewer = require_viewer(info)
    if (input.product_id is None) == (input.channel_id is None):
        return SetSplitRulePayload(
            user_errors=[
                user_error(
                    ErrorCode.INVALID_INPUT, "Name either a product or a channel.", "productId"
                )
            ]
        )
    product_id = channel_id = None
    if input.product_id is not None:
        product = await find_product(info, viewer, input.product_id)
        if product is None:
            return SetSplitRulePayload(
                user_errors=[user_error(ErrorCode.NOT_FOUND, "No such product.", "productId")]
            )
        product_id = product.id
    else:
        channel = await find_channel(info, viewer, input.channel_id)
        if channel is None:
            return SetSplitRulePayload(user_errors=[channel_not_found("channelId")])
        channel_id = channel.id
    if not _may_set(viewer):
        return SetSplitRulePayload(
            user_errors=[
                user_error(
                    ErrorCode.FORBIDDEN, "Only the platform's owners and finance set split rules."
                )
            ]
        )

    db = info.context.services.db
    if input.clear:
        cleared = await rules.clear_rule(db, product_id=product_id, channel_id=channel_id)
        return SetSplitRulePayload(split_rule=SplitRule(record=cleared) if cleared else None)

    kind = SplitKind(input.kind)
    ratio, errors = _ratio(kind, input)
    if errors:
        return SetSplitRulePayload(user_errors=errors)
    record = await rules.set_rule(
        db, product_id=product_id, channel_id=channel_id, kind=kind, ratio=ratio
    )
    return SetSplitRulePayload(split_rule=SplitRule(record=record))


def _ratio(kind: SplitKind, input: SetSplitRuleInput) -> tuple[RatioRule | None, list[UserError]]:
    given = [input.supplier_percent, input.platform_percent, input.agent_percents]
    if kind is SplitKind.PRICE_CHAIN:
        if any(g is not None for g in given):
            return None, [
                user_error(
                    ErrorCode.INVALID_INPUT,
                    "A PRICE_CHAIN rule takes no percentages.",
                    "supplierPercent",
                )
            ]
        return None, []
    if input.supplier_percent is None or input.platform_percent is None:
        return None, [
            user_error(
                ErrorCode.INVALID_INPUT,
                "A RATIO rule needs supplierPercent and platformPercent.",
                "supplierPercent",
            )
        ]
    ratio = RatioRule(
        input.supplier_percent, input.platform_percent, tuple(input.agent_percents or ())
    )
    problem = ratio.problem()
    if problem:
        return None, [user_error(ErrorCode.INVALID_INPUT, problem, "agentPercents")]
    return ratio, []


async def resolve_rule_product(info: Info, record: SplitRuleRecord) -> Product | None:
    if record.product_id is None:
        return None
    product = await find_product(
        info, require_viewer(info), ids.encode("Product", record.product_id)
    )
    return Product(record=product) if product else None


async def resolve_rule_channel(info: Info, record: SplitRuleRecord) -> Channel | None:
    if record.channel_id is None:
        return None
    viewer = require_viewer(info)
    found = await channels.get_in_subtree(
        info.context.services.db, record.channel_id, viewer.channel_path
    )
    return Channel(record=found) if found else None
