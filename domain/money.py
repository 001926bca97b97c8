"""Money: Decimal amounts in CNY, always whole cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def cents(amount: Decimal) -> Decimal:
    """Round half up to whole cents (the rounding people check statements by)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def with_markup(price: Decimal, percent: Decimal) -> Decimal:
    return cents(price * (HUNDRED + percent) / HUNDRED)
