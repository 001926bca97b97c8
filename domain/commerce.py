"""Rules for what a channel sets for the channels below it: prices, markups, products.

Where a channel may act: it sets prices for its direct children only (they are the ones
buying from it), and hides products or narrows restrictions for any channel strictly
below it. The price rules themselves are in ``domain.pricing``.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from domain.access import Principal, in_subtree
from domain.channels import Problem

MAX_MARKUP = Decimal(1000)
MARKUP_STEP = Decimal("0.001")
MAX_PRODUCT_IDS = 1000

MARKUP_MESSAGE = "Give a markup of 0 to 1000 percent with at most 3 decimal places."
PRICE_CHOICE_MESSAGE = "Give exactly one of price and markupPercent, or neither with clear: true."


def clean_markup(value: Decimal, field: str = "markupPercent") -> tuple[Decimal, Problem | None]:
    """A markup in percent: finite, 0 to 1000, at most three decimals (numeric(7, 3))."""
    # In this order, so that NaN and huge exponents never reach quantize.
    if not value.is_finite() or value < 0 or value > MAX_MARKUP:
        return value, Problem(field, MARKUP_MESSAGE)
    stepped = value.quantize(MARKUP_STEP, rounding=ROUND_DOWN)
    if stepped != value:
        return value, Problem(field, MARKUP_MESSAGE)
    return stepped + 0, None  # + 0 turns -0.000 into 0.000


def check_price_choice(
    price: Decimal | None, markup_percent: Decimal | None, clear: bool
) -> Problem | None:
    """A price setting is a fixed price, a markup, or a clear, exactly one of them."""
    given = (price is not None) + (markup_percent is not None)
    if (clear and given) or (not clear and given != 1):
        return Problem("price", PRICE_CHOICE_MESSAGE)
    return None


def is_direct_child(viewer: Principal, parent_id: int | None) -> bool:
    """Whether a channel with this parent buys from the viewer's channel."""
    return parent_id == viewer.channel_id


def is_strictly_below(viewer: Principal, path: str) -> bool:
    """Whether the channel at ``path`` is in the viewer's subtree but not the viewer's own."""
    return path != viewer.channel_path and in_subtree(path, viewer.channel_path)
