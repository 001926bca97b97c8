"""Prices per level: what each channel's parent set for it, and channels' default markups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from domain.pricing import PriceLevel
from persistence.queries import queries
from persistence.types import Db

Q = queries("pricing")


class PricePath(NamedTuple):
    """A product's cost and base price, and the levels of a path, root first."""

    cost: Decimal
    base_price: Decimal
    levels: list[PriceLevel]


@dataclass(frozen=True, slots=True)
class ChannelPriceRecord:
    """A price a parent set for a channel: a fixed price or a markup on its own price."""

    product_id: int
    price: Decimal | None
    markup_percent: Decimal | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ChannelPriceRecord:
        return cls(row["product_id"], row["price"], row["markup_percent"], row["updated_at"])


def _level(row: asyncpg.Record) -> PriceLevel:
    return PriceLevel(
        channel_id=row["channel_id"],
        default_markup_percent=row["default_markup_percent"],
        price=row["price"],
        markup_percent=row["markup_percent"],
    )


async def price_path(db: Db, channel_path: str, product_id: int) -> PricePath | None:
    """The product's price levels from the root down to the channel at ``channel_path``,
    in one query; None when the product does not exist."""
    rows = await db.fetch(Q["price_path"], channel_path, product_id)
    if not rows:
        return None
    return PricePath(rows[0]["cost_price"], rows[0]["base_price"], [_level(r) for r in rows])


async def price_paths(
    db: Db, channel_path: str, product_ids: Sequence[int]
) -> dict[int, PricePath]:
    """``price_path`` for many products at once (one query), by product id; products
    that do not exist are left out."""
    paths: dict[int, PricePath] = {}
    for row in await db.fetch(Q["price_paths"], channel_path, list(set(product_ids))):
        path = paths.get(row["product_id"])
        if path is None:
            path = paths[row["product_id"]] = PricePath(row["cost_price"], row["base_price"], [])
        path.levels.append(_level(row))
    return paths


async def set_price(
    db: Db,
    channel_id: int,
    product_id: int,
    *,
    price: Decimal | None,
    markup_percent: Decimal | None,
) -> None:
    """Set (or replace) the price a channel buys a product at: one of the two is given."""
    await db.execute(Q["set_price"], channel_id, product_id, price, markup_percent)


async def clear_price(db: Db, channel_id: int, product_id: int) -> None:
    """Remove the channel's price: it buys at its parent's price plus the default markup."""
    await db.execute(Q["clear_price"], channel_id, product_id)


async def set_default_markup(db: Db, channel_id: int, markup_percent: Decimal) -> None:
    await db.execute(Q["set_default_markup"], channel_id, markup_percent)


async def price_page(
    db: Db, channel_id: int, after_product_id: int, limit: int, *, viewer_path: str | None
) -> list[ChannelPriceRecord]:
    """Prices set for a channel, of products the reader sees, in product id order."""
    rows = await db.fetch(Q["price_page"], channel_id, after_product_id, limit, viewer_path)
    return [ChannelPriceRecord.from_row(r) for r in rows]
