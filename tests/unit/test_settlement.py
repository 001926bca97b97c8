"""Split settlement: every split balances to the cent, whatever the tree and the rule."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.money import CENT
from domain.pricing import PriceLevel, resolve
from domain.settlement import (
    PAYMENT_CLEARING,
    PLATFORM_REVENUE,
    AccountKind,
    Posting,
    RatioRule,
    allocate,
    earnings,
    mirror,
    sale,
    supplier_payable,
    top_up,
    wallet,
)

money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False)
percent = st.decimals(min_value=0, max_value=50, places=3, allow_nan=False)


@st.composite
def paths(draw: st.DrawFn) -> tuple[Decimal, Decimal, list[PriceLevel]]:
    """A product and a path root..buyer (depth 1 to 6) whose prices respect the rules."""
    cost = draw(money)
    base = cost + draw(money)
    depth = draw(st.integers(1, 6))
    levels = [PriceLevel(1, draw(percent))]
    for i in range(depth):
        how = draw(st.sampled_from(["default", "price", "markup"]))
        if how == "price":
            # At or above what the parent pays, as setChannelPrice enforces
            parent_price = resolve(cost, base, levels).price
            levels.append(PriceLevel(i + 2, draw(percent), price=parent_price + draw(money)))
        elif how == "markup":
            levels.append(PriceLevel(i + 2, draw(percent), markup_percent=draw(percent)))
        else:
            levels.append(PriceLevel(i + 2, draw(percent)))
    return cost, base, levels


@st.composite
def ratio_rules(draw: st.DrawFn) -> RatioRule:
    """Shares of 3 decimals that add up to exactly 100."""
    n = draw(st.integers(2, 8))
    cuts = sorted(draw(st.lists(st.integers(0, 100_000), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, 100_000]
    shares = [Decimal(b - a) / 1000 for a, b in pairwise(bounds)]
    return RatioRule(shares[0], shares[1], tuple(shares[2:]))


def total(postings: list[Posting]) -> Decimal:
    return sum((p.amount for p in postings), Decimal(0))


@settings(max_examples=300)
@given(paths(), st.integers(1, 1000))
def test_price_chain_splits_balance_and_no_agent_loses(
    product: tuple[Decimal, Decimal, list[PriceLevel]], quantity: int
) -> None:
    cost, base, levels = product
    chain = resolve(cost, base, levels)
    buyer = chain.channel_ids[-1]

    postings = sale(chain, quantity, supplier_id=7, paid_from=wallet(buyer))

    assert total(postings) == 0
    assert all(p.amount == p.amount.quantize(CENT) for p in postings)
    assert postings[0] == Posting(wallet(buyer), chain.price * quantity)
    # Everyone but the buyer is credited, never debited: no negative margin
    assert all(p.amount < 0 for p in postings[1:])
    credited = {p.account: -p.amount for p in postings[1:]}
    assert credited.get(supplier_payable(7), Decimal(0)) == cost * quantity
    for k, channel in enumerate(chain.channel_ids[1:-1], start=1):
        margin = (chain.prices[k + 1] - chain.prices[k]) * quantity
        assert credited.get(earnings(channel), Decimal(0)) == margin


@settings(max_examples=300)
@given(paths(), st.integers(1, 1000), ratio_rules())
def test_ratio_splits_sum_exactly_to_the_sale(
    product: tuple[Decimal, Decimal, list[PriceLevel]], quantity: int, rule: RatioRule
) -> None:
    cost, base, levels = product
    chain = resolve(cost, base, levels)
    assert rule.problem() is None

    postings = sale(chain, quantity, None, PAYMENT_CLEARING, rule)

    assert total(postings) == 0
    sold = chain.price * quantity
    assert postings[0] == Posting(PAYMENT_CLEARING, sold)
    # Each part is within a cent of its exact share
    agents = len(chain.channel_ids) - 2
    platform_share = rule.platform_percent + sum(rule.agent_percents[agents:], Decimal(0))
    exact = {
        supplier_payable(None): sold * rule.supplier_percent / 100,
        PLATFORM_REVENUE: sold * platform_share / 100,
    }
    for k, channel in enumerate(chain.channel_ids[1:-1]):
        share = rule.agent_percents[k] if k < len(rule.agent_percents) else Decimal(0)
        exact[earnings(channel)] = sold * share / 100
    got = {p.account: -p.amount for p in postings[1:]}
    for account, share in exact.items():
        assert abs(got.get(account, Decimal(0)) - share) < CENT


@given(money, st.lists(percent, min_size=1, max_size=8))
def test_allocate_is_exact_and_deterministic(amount: Decimal, weights: list[Decimal]) -> None:
    if sum(weights) == 0:
        weights = [Decimal(1), *weights]
    scale = Decimal(100) / sum(weights)
    percents = [w * scale for w in weights]
    percents[-1] = Decimal(100) - sum(percents[:-1], Decimal(0))

    parts = allocate(amount, percents)

    assert sum(parts, Decimal(0)) == amount
    assert parts == allocate(amount, percents)
    assert all(p >= 0 for p in parts)


def test_allocate_gives_leftover_cents_to_the_largest_remainders() -> None:
    assert allocate(Decimal("10.00"), [Decimal("33.333")] * 2 + [Decimal("33.334")]) == [
        Decimal("3.33"),
        Decimal("3.33"),
        Decimal("3.34"),
    ]
    assert allocate(Decimal("0.01"), [Decimal(50), Decimal(50)]) == [CENT, Decimal(0)]


@given(paths(), st.integers(1, 50))
def test_a_refund_is_the_exact_mirror(
    product: tuple[Decimal, Decimal, list[PriceLevel]], quantity: int
) -> None:
    cost, base, levels = product
    chain = resolve(cost, base, levels)
    original = sale(chain, quantity, 1, wallet(chain.channel_ids[-1]))

    refund = mirror(original)

    by_account: dict[object, Decimal] = {}
    for p in original + refund:
        by_account[p.account] = by_account.get(p.account, Decimal(0)) + p.amount
    assert set(by_account.values()) == {Decimal(0)}


def test_top_up_moves_money_into_the_wallet() -> None:
    postings = top_up(5, Decimal("100.00"), PAYMENT_CLEARING)
    assert postings == [
        Posting(PAYMENT_CLEARING, Decimal("100.00")),
        Posting(wallet(5), Decimal("-100.00")),
    ]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (RatioRule(Decimal(70), Decimal(30)), None),
        (RatioRule(Decimal(70), Decimal(20)), "Shares must add up to 100, not 90."),
        (
            RatioRule(Decimal(-10), Decimal(110)),
            "Shares are percentages of 0 or more, with at most 3 decimals.",
        ),
        (
            RatioRule(Decimal("70.0001"), Decimal("29.9999")),
            "Shares are percentages of 0 or more, with at most 3 decimals.",
        ),
    ],
)
def test_ratio_rules_must_add_up(rule: RatioRule, problem: str | None) -> None:
    assert rule.problem() == problem


def test_the_platform_cannot_buy_from_itself() -> None:
    chain = resolve(Decimal(1), Decimal(2), [PriceLevel(1, Decimal(0))])
    with pytest.raises(ValueError, match="below the platform"):
        sale(chain, 1, None, wallet(1))


def test_account_kinds_cover_the_ledger() -> None:
    assert {k.value for k in AccountKind} == {
        "CHANNEL_WALLET",
        "CHANNEL_EARNINGS",
        "SUPPLIER_PAYABLE",
        "PLATFORM_REVENUE",
        "PAYMENT_CLEARING",
    }
