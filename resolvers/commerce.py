"""Channel commerce: prices per level, the products a channel sees, its restrictions.

Refusals come in a fixed order: a channel outside the caller's subtree (NOT_FOUND, as if
it did not exist), the caller's role, where the channel stands relative to the caller
(FORBIDDEN), products the caller cannot see (NOT_FOUND), input problems, and last the
rules that compare values (PRICE_BELOW_COST, REGION_NOT_ALLOWED).
"""

from __future__ import annotations

from decimal import Decimal

from strawberry.dataloader import DataLoader

from domain.access import Action, Principal
from domain.catalog import clean_money, visibility_path
from domain.commerce import (
    MAX_PRODUCT_IDS,
    check_price_choice,
    clean_markup,
    is_direct_child,
    is_strictly_below,
)
from domain.pricing import resolve
from persistence import catalog, channels, commerce, pricing
from persistence.catalog import ProductRecord
from persistence.channels import ChannelRecord
from persistence.pricing import PricePath
from resolvers.catalog import find_product, product_not_found
from resolvers.channels import (
    channel_not_found,
    find_channel,
    forbidden,
    invalid,
    restrictions_within,
)
from schema import ids
from schema.catalog import Product
from schema.channels import Channel
from schema.commerce import (
    ChannelPrice,
    PriceChainLevel,
    SetChannelDefaultMarkupInput,
    SetChannelDefaultMarkupPayload,
    SetChannelPriceInput,
    SetChannelPricePayload,
    SetChannelProductsInput,
    SetChannelProductsPayload,
    SetChannelRestrictionsInput,
    SetChannelRestrictionsPayload,
)
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, Refused, UserError, user_error
from schema.pagination import Connection, connection, window

# Published after hidden products change: {"path": channel path, "product_ids": [...]}.
TOPIC_PRODUCT_VISIBILITY = "product-visibility"


def _purchase_price(path: PricePath) -> Decimal:
    return list(resolve(path.cost, path.base_price, path.levels, check=False).prices)[-1]


# --- reading prices ---------------------------------------------------------------------


def _price_loader(info: Info) -> DataLoader[int, Decimal]:
    """The caller's purchase prices, batched: one query for all products of a request."""
    context = info.context
    if context.price_loader is None:
        viewer = require_viewer(info)
        db = context.services.db

        async def load(product_ids: list[int]) -> list[Decimal | BaseException]:
            paths = await pricing.price_paths(db, viewer.channel_path, product_ids)
            return [
                _purchase_price(paths[p]) if p in paths else LookupError(f"no product {p}")
                for p in product_ids
            ]

        # No cache: a WebSocket's context lives as long as the connection, and a
        # mutation must show the price it just set.
        context.price_loader = DataLoader(load_fn=load, cache=False)
    return context.price_loader


async def resolve_product_price(info: Info, record: ProductRecord) -> Decimal:
    """What the caller's channel pays for one code; for the platform, the cost price."""
    if require_viewer(info).is_platform:
        return record.cost_price
    return await _price_loader(info).load(record.id)


async def resolve_channel_prices(
    info: Info, record: ChannelRecord, first: int | None, after: str | None
) -> Connection[ChannelPrice]:
    """Prices set for a channel (of the caller's subtree), of products the caller sees."""
    viewer = require_viewer(info)
    db = info.context.services.db
    win = window(first, after, info.context.services.settings.max_page_size)
    seen_by = visibility_path(viewer)
    rows = await pricing.price_page(db, record.id, win.after_key, win.limit, viewer_path=seen_by)
    wanted = [r.product_id for r in rows]
    products = {p.id: p for p in await catalog.products_by_ids(db, wanted, viewer_path=seen_by)}
    paths = await pricing.price_paths(db, record.path, wanted)
    # A product hidden between the two reads is left out.
    rows = [r for r in rows if r.product_id in products]
    return connection(
        rows,
        win,
        key=lambda r: r.product_id,
        node=lambda r: ChannelPrice(
            record=r,
            product_record=products[r.product_id],
            effective=_purchase_price(paths[r.product_id]),
        ),
    )


async def price_chain(
    info: Info, product_id: str, channel_id: str | None
) -> list[PriceChainLevel] | None:
    viewer = require_viewer(info)
    product = await find_product(info, viewer, product_id)
    target = await find_channel(info, viewer, channel_id)
    if product is None or target is None:
        return None
    db = info.context.services.db
    path = await pricing.price_path(db, target.path, product.id)
    if path is None:
        return None
    prices = list(resolve(path.cost, path.base_price, path.levels, check=False).prices)
    chain = await channels.chain_between(db, target.path, viewer.channel_path)
    return [PriceChainLevel(channel=Channel(record=c), price=prices[c.level]) for c in chain]


# --- setting prices ---------------------------------------------------------------------


async def set_channel_price(info: Info, input: SetChannelPriceInput) -> SetChannelPricePayload:
    viewer = require_viewer(info)
    child = await find_channel(info, viewer, input.channel_id)
    if child is None:
        return SetChannelPricePayload(user_errors=[channel_not_found("channelId")])
    if not viewer.may(Action.MANAGE_CHANNELS):
        return SetChannelPricePayload(user_errors=[forbidden("set prices")])
    if not is_direct_child(viewer, child.parent_id):
        return SetChannelPricePayload(
            user_errors=[
                user_error(
                    ErrorCode.FORBIDDEN,
                    "You set prices for your direct children only.",
                    "channelId",
                )
            ]
        )
    product = await find_product(info, viewer, input.product_id)
    if product is None:
        return SetChannelPricePayload(user_errors=[product_not_found()])

    price, markup = input.price, input.markup_percent
    choice = check_price_choice(price, markup, input.clear)
    if choice is not None:
        return SetChannelPricePayload(user_errors=[invalid(choice)])
    problem = None
    if price is not None:
        price, problem = clean_money(price, "price")
    elif markup is not None:
        markup, problem = clean_markup(markup)
    if problem is not None:
        return SetChannelPricePayload(user_errors=[invalid(problem)])

    try:
        # The write locks the (child, product) row, so concurrent settings apply one after
        # another and each is checked, with the path as it stands, before it commits.
        async with info.context.services.db.acquire() as conn, conn.transaction():
            if input.clear:
                await pricing.clear_price(conn, child.id, product.id)
            else:
                await pricing.set_price(
                    conn, child.id, product.id, price=price, markup_percent=markup
                )
            path = await pricing.price_path(conn, child.path, product.id)
            assert path is not None, "the product was found"
            *_, own, resulting = list(
                resolve(path.cost, path.base_price, path.levels, check=False).prices
            )
            if resulting < own:
                raise Refused(
                    user_error(
                        ErrorCode.PRICE_BELOW_COST,
                        f"The price {resulting} is below your own purchase price {own}.",
                        "price",
                    )
                )
    except Refused as refused:
        return SetChannelPricePayload(user_errors=[refused.error])
    return SetChannelPricePayload(
        channel=Channel(record=child), product=Product(record=product), price=resulting
    )


async def set_channel_default_markup(
    info: Info, input: SetChannelDefaultMarkupInput
) -> SetChannelDefaultMarkupPayload:
    viewer = require_viewer(info)
    channel = await find_channel(info, viewer, input.channel_id)
    if channel is None:
        return SetChannelDefaultMarkupPayload(user_errors=[channel_not_found("channelId")])
    if not viewer.may(Action.MANAGE_CHANNELS):
        return SetChannelDefaultMarkupPayload(user_errors=[forbidden("set markups")])
    if channel.parent_id is None:
        return SetChannelDefaultMarkupPayload(
            user_errors=[
                user_error(
                    ErrorCode.INVALID_INPUT,
                    "The platform's agents buy at each product's base price unless it sets"
                    " them a price: the platform has no default markup.",
                    "channelId",
                )
            ]
        )
    markup, problem = clean_markup(input.markup_percent)
    if problem is not None:
        return SetChannelDefaultMarkupPayload(user_errors=[invalid(problem)])
    db = info.context.services.db
    await pricing.set_default_markup(db, channel.id, markup)
    updated = await channels.get_in_subtree(db, channel.id, viewer.channel_path)
    assert updated is not None, "channels are never deleted"
    return SetChannelDefaultMarkupPayload(channel=Channel(record=updated))


# --- visibility and restrictions --------------------------------------------------------


def _not_below(what: str) -> UserError:
    return user_error(
        ErrorCode.FORBIDDEN, f"You {what} for channels below your own only.", "channelId"
    )


async def _channel_below(
    info: Info, viewer: Principal, channel_id: str, what: str
) -> tuple[ChannelRecord | None, UserError | None]:
    """The channel strictly below the caller's that an input names, or the refusal."""
    channel = await find_channel(info, viewer, channel_id)
    if channel is None:
        return None, channel_not_found("channelId")
    if not viewer.may(Action.MANAGE_CHANNELS):
        return None, forbidden(f"{what} for channels")
    if not is_strictly_below(viewer, channel.path):
        return None, _not_below(what)
    return channel, None


async def set_channel_products(
    info: Info, input: SetChannelProductsInput
) -> SetChannelProductsPayload:
    viewer = require_viewer(info)
    channel, refusal = await _channel_below(info, viewer, input.channel_id, "choose products")
    if channel is None:
        assert refusal is not None
        return SetChannelProductsPayload(user_errors=[refusal])
    if len(input.product_ids) > MAX_PRODUCT_IDS:
        return SetChannelProductsPayload(
            user_errors=[
                user_error(
                    ErrorCode.INVALID_INPUT,
                    f"Give at most {MAX_PRODUCT_IDS} product ids.",
                    "productIds",
                )
            ]
        )
    db = info.context.services.db
    keys = [ids.decode("Product", p) for p in input.product_ids]
    wanted = sorted({k for k in keys if k is not None})
    # A product the caller cannot see (hidden above it, or off shelf) is not found.
    visible = await catalog.visible_product_ids(db, wanted, viewer_path=visibility_path(viewer))
    errors = [
        UserError(
            field=["productIds", str(i)], code=ErrorCode.NOT_FOUND, message="No such product."
        )
        for i, key in enumerate(keys)
        if key is None or key not in visible
    ]
    if errors:
        return SetChannelProductsPayload(user_errors=errors)
    if wanted:
        if input.visible:
            await commerce.show_products(db, channel.id, wanted, viewer.channel_path)
        else:
            await commerce.hide_products(db, channel.id, wanted, viewer.channel_id)
        await info.context.services.events.publish(
            TOPIC_PRODUCT_VISIBILITY, {"path": channel.path, "product_ids": wanted}
        )
    return SetChannelProductsPayload(channel=Channel(record=channel))


async def set_channel_restrictions(
    info: Info, input: SetChannelRestrictionsInput
) -> SetChannelRestrictionsPayload:
    viewer = require_viewer(info)
    channel, refusal = await _channel_below(info, viewer, input.channel_id, "set restrictions")
    if channel is None:
        assert refusal is not None
        return SetChannelRestrictionsPayload(user_errors=[refusal])
    db = info.context.services.db
    *above, _ = await commerce.path_restrictions(db, channel.path)
    parent_regions, parent_groups = above[-1]

    # Left out: keep; empty: the parent's, as createChannel does.
    regions, groups, errors = restrictions_within(
        channel.regions if input.regions is None else input.regions or parent_regions,
        channel.customer_groups
        if input.customer_groups is None
        else input.customer_groups or parent_groups,
        above,
    )
    if errors:
        return SetChannelRestrictionsPayload(user_errors=errors)
    updated = await commerce.set_restrictions(db, channel.id, regions, groups)
    assert updated is not None, "channels are never deleted"
    return SetChannelRestrictionsPayload(channel=Channel(record=updated))
