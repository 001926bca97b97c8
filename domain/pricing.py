"""The price chain: what each channel on a path pays for a product.

The platform buys at the product's cost and sells to its agents at the base price unless
it sets them another. Every other channel buys at the price its parent set for it, a
fixed price or a markup on the parent's own price, and when none is set, at the parent's
price plus the parent's default markup. A child never pays less than its parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.money import with_markup


@dataclass(frozen=True, slots=True)
class PriceLevel:
    """One channel of a path, root first: what its parent set for it, and its default."""

    channel_id: int
    default_markup_percent: Decimal
    price: Decimal | None = None
    markup_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceChain:
    """Purchase prices along a path, root (the cost) first."""

    channel_ids: tuple[int, ...]
    prices: tuple[Decimal, ...]

    @property
    def price(self) -> Decimal:
        """What the last channel of the path pays."""
        return self.prices[-1]

    def price_of(self, channel_id: int) -> Decimal:
        return self.prices[self.channel_ids.index(channel_id)]


class PriceBelowCost(Exception):
    """A channel on the path would pay less than its parent."""

    def __init__(self, channel_id: int, price: Decimal, parent_price: Decimal) -> None:
        super().__init__(f"channel {channel_id} pays {price}, below its parent's {parent_price}")
        self.channel_id = channel_id
        self.price = price
        self.parent_price = parent_price


def level_price(
    parent_price: Decimal,
    parent_default_markup: Decimal,
    price: Decimal | None,
    markup_percent: Decimal | None,
    *,
    parent_is_platform: bool,
    base_price: Decimal,
) -> Decimal:
    """The price a channel pays, from what its parent set for it (if anything)."""
    if price is not None:
        return price
    if markup_percent is not None:
        return with_markup(parent_price, markup_percent)
    if parent_is_platform:
        return base_price
    return with_markup(parent_price, parent_default_markup)


def resolve(
    cost: Decimal, base_price: Decimal, path: Sequence[PriceLevel], *, check: bool = True
) -> PriceChain:
    """The chain for a path from the platform (``path[0]``) down.

    Raises PriceBelowCost for a channel paying less than its parent, which a later change
    above a fixed price can cause; ``check=False`` shows such a chain as it is set (for
    display: orders always check).
    """
    prices = [cost]
    for depth in range(1, len(path)):
        parent = path[depth - 1]
        level = path[depth]
        price = level_price(
            prices[-1],
            parent.default_markup_percent,
            level.price,
            level.markup_percent,
            parent_is_platform=depth == 1,
            base_price=base_price,
        )
        if check and price < prices[-1]:
            raise PriceBelowCost(level.channel_id, price, prices[-1])
        prices.append(price)
    return PriceChain(tuple(level.channel_id for level in path), tuple(prices))
