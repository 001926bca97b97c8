"""Price chains (domain.pricing) and the rules for setting prices (domain.commerce)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.channels import Problem
from domain.commerce import (
    MARKUP_MESSAGE,
    PRICE_CHOICE_MESSAGE,
    check_price_choice,
    clean_markup,
)
from domain.money import with_markup
from domain.pricing import PriceBelowCost, PriceLevel, resolve

ROOT, A, A1, A11 = 1, 2, 3, 4


def level(
    channel_id: int,
    default: str = "0",
    price: str | None = None,
    markup: str | None = None,
) -> PriceLevel:
    return PriceLevel(
        channel_id,
        D(default),
        D(price) if price is not None else None,
        D(markup) if markup is not None else None,
    )


# --- defaults ---------------------------------------------------------------------------


def test_the_platform_buys_at_cost() -> None:
    chain = resolve(D("20.00"), D("25.00"), [level(ROOT)])
    assert chain.prices == (D("20.00"),)
    assert chain.price == D("20.00")


def test_agents_buy_at_the_base_price_whatever_the_platforms_default_markup() -> None:
    # Given a platform with a default markup, which does not apply to its agents
    path = [level(ROOT, default="50"), level(A)]

    # Then an agent without a price of its own buys at the base price
    assert resolve(D("20.00"), D("25.00"), path).prices == (D("20.00"), D("25.00"))


def test_deeper_channels_inherit_the_parents_price_plus_its_default_markup() -> None:
    # Given A adds 10% and A1 adds 5% for children without a price
    path = [level(ROOT), level(A, default="10"), level(A1, default="5"), level(A11)]

    # Then each level pays its parent's price plus the parent's default
    chain = resolve(D("20.00"), D("25.00"), path)
    assert chain.prices == (D("20.00"), D("25.00"), D("27.50"), D("28.88"))
    assert chain.price_of(A1) == D("27.50")


def test_a_default_markup_of_zero_passes_the_price_down_unchanged() -> None:
    path = [level(ROOT), level(A), level(A1), level(A11)]
    assert resolve(D("20.00"), D("25.00"), path).price == D("25.00")


# --- prices and markups set by the parent -----------------------------------------------


def test_a_fixed_price_beats_the_default_markup_and_applies_to_that_level_only() -> None:
    # Given A sets A1 a fixed price and has a default markup of 10%
    path = [level(ROOT), level(A, default="10"), level(A1, price="30.00"), level(A11)]

    # Then A1 pays the fixed price and A11 inherits it plus A1's default (0)
    assert resolve(D("20.00"), D("25.00"), path).prices[2:] == (D("30.00"), D("30.00"))


def test_a_markup_applies_to_the_parents_own_price() -> None:
    # Given the platform marks A up 10% on its cost, and A marks A1 up 20% on its price
    path = [level(ROOT), level(A, markup="10"), level(A1, markup="20")]

    # Then A pays cost + 10%, A1 pays A's price + 20%
    assert resolve(D("20.00"), D("25.00"), path).prices == (D("20.00"), D("22.00"), D("26.40"))


@pytest.mark.parametrize(
    ("price", "percent", "expected"),
    [
        ("10.01", "5.5", "10.56"),  # 10.56055
        ("0.05", "50", "0.08"),  # 0.075: half up
        ("0.03", "50", "0.05"),  # 0.045: half up
        ("19.99", "0.001", "19.99"),  # 19.9901999
        ("100.00", "1000", "1100.00"),
        ("0.00", "300", "0.00"),
    ],
)
def test_markups_round_half_up_to_cents(price: str, percent: str, expected: str) -> None:
    path = [level(ROOT), level(A, markup=percent)]
    assert resolve(D(price), D(price), path).price == D(expected)
    assert with_markup(D(price), D(percent)) == D(expected)


# --- inversion --------------------------------------------------------------------------


def test_a_fixed_price_below_the_parents_is_refused_by_resolve() -> None:
    # Given the platform later raised A's price above what A set for A1
    path = [level(ROOT), level(A, price="26.00"), level(A1, price="25.50"), level(A11)]

    # Then resolving refuses and names the level that pays less than its parent
    with pytest.raises(PriceBelowCost) as refused:
        resolve(D("20.00"), D("25.00"), path)
    assert (refused.value.channel_id, refused.value.price, refused.value.parent_price) == (
        A1,
        D("25.50"),
        D("26.00"),
    )

    # And for showing, the chain is resolved as set, inversion included
    assert list(resolve(D("20.00"), D("25.00"), path, check=False).prices) == [
        D("20.00"),
        D("26.00"),
        D("25.50"),
        D("25.50"),
    ]


def test_a_platform_price_below_cost_is_refused() -> None:
    with pytest.raises(PriceBelowCost) as refused:
        resolve(D("20.00"), D("25.00"), [level(ROOT), level(A, price="19.99")])
    assert refused.value.channel_id == A


# --- random paths -----------------------------------------------------------------------

cents = st.integers(min_value=0, max_value=10_000_000).map(lambda c: D(c) / 100)
percents = st.integers(min_value=0, max_value=1_000_000).map(lambda m: D(m) / 1000)


@st.composite
def respecting_paths(draw: st.DrawFn) -> tuple[D, D, list[PriceLevel]]:
    """A cost, a base price and a path of up to depth 6 where every level pays at least
    its parent: fixed prices are drawn above the parent's price as it resolves."""
    cost = draw(cents)
    base = cost + draw(cents)
    path = [level(ROOT, default=str(draw(percents)))]
    parent_price = cost
    for depth in range(1, draw(st.integers(min_value=0, max_value=6)) + 1):
        kind = draw(st.sampled_from(["inherit", "price", "markup"]))
        price = str(parent_price + draw(cents)) if kind == "price" else None
        markup = str(draw(percents)) if kind == "markup" else None
        path.append(level(depth + 1, str(draw(percents)), price, markup))
        parent_price = resolve(cost, base, path, check=False).price
    return cost, base, path


@given(respecting_paths())
def test_a_chain_that_respects_the_rules_never_decreases(
    case: tuple[D, D, list[PriceLevel]],
) -> None:
    cost, base, path = case

    chain = resolve(cost, base, path)

    assert chain.prices[0] == cost
    assert all(a <= b for a, b in zip(chain.prices, chain.prices[1:], strict=False))
    assert all(p == p.quantize(D("0.01")) for p in chain.prices)
    assert chain.channel_ids == tuple(lv.channel_id for lv in path)
    assert chain.prices == resolve(cost, base, path, check=False).prices


@given(respecting_paths(), st.data())
def test_an_inverted_level_is_found_by_resolve_and_shown_unchecked(
    case: tuple[D, D, list[PriceLevel]], data: st.DataObject
) -> None:
    cost, base, path = case
    prices = resolve(cost, base, path, check=False).prices
    # Given one level below the platform whose parent pays something, set one cent below it
    candidates = [i for i in range(1, len(path)) if prices[i - 1] > 0]
    if not candidates:
        return
    at = data.draw(st.sampled_from(candidates))
    below = prices[at - 1] - D("0.01")
    path[at] = PriceLevel(path[at].channel_id, path[at].default_markup_percent, below, None)

    # Then resolve refuses at the first inverted level, which is this one
    with pytest.raises(PriceBelowCost) as refused:
        resolve(cost, base, path)
    assert refused.value.channel_id == path[at].channel_id
    assert (refused.value.price, refused.value.parent_price) == (below, prices[at - 1])

    # And an unchecked resolution shows the level as set
    assert resolve(cost, base, path, check=False).prices[at] == below


# --- setting prices: input rules --------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("0", "0"), ("10", "10"), ("12.345", "12.345"), ("1000", "1000"), ("-0.000", "0.000")],
)
def test_markups_from_0_to_1000_with_3_decimals_are_accepted(given: str, expected: str) -> None:
    assert clean_markup(D(given)) == (D(expected), None)


@pytest.mark.parametrize("bad", ["-0.001", "1000.001", "1.0001", "NaN", "Infinity", "1E+400"])
def test_other_markups_are_refused(bad: str) -> None:
    assert clean_markup(D(bad))[1] == Problem("markupPercent", MARKUP_MESSAGE)


@pytest.mark.parametrize(
    ("price", "markup", "clear", "ok"),
    [
        (D(1), None, False, True),
        (None, D(1), False, True),
        (None, None, True, True),
        (None, None, False, False),
        (D(1), D(1), False, False),
        (D(1), None, True, False),
        (None, D(0), True, False),
    ],
)
def test_exactly_one_of_price_markup_or_clear(
    price: D | None, markup: D | None, clear: bool, ok: bool
) -> None:
    expected = None if ok else Problem("price", PRICE_CHOICE_MESSAGE)
    assert check_price_choice(price, markup, clear) == expected
