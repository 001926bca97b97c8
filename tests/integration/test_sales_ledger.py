"""Sales, top-ups and refunds against the real ledger, in random trees and orders.

Whatever happens, the books add up: all balances together are zero, every account's
balance equals the replay of its entries, no agent ends below zero under the price chain,
and a refunded sale leaves every account as it was.
"""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import settlement
from domain.ledger import TransactionKind
from domain.pricing import PriceBelowCost, resolve
from domain.settlement import AccountKind
from persistence import channels, ledger, pricing, sales
from persistence.channels import ChannelRecord
from persistence.ledger import InsufficientBalance


async def make_product(db: asyncpg.Connection[Any], cost: Decimal, base: Decimal) -> int:
    product_id: int = await db.fetchval(
        "INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment)"
        " VALUES ('card', 'GAME', $2, $1, $2, 'POOL') RETURNING id",
        cost,
        base,
    )
    return product_id


async def make_tree(db: asyncpg.Connection[Any], rng: random.Random) -> list[ChannelRecord]:
    """Up to 12 channels below the root, at most 6 levels deep."""
    root = await channels.root(db)
    tree = [root]
    for i in range(rng.randint(1, 12)):
        parent = rng.choice([c for c in tree if c.level < 6])
        tree.append(await channels.insert_child(db, parent.id, f"c{i}", [], []))
    return tree


async def price_everyone(
    db: asyncpg.Connection[Any], tree: list[ChannelRecord], product: int, rng: random.Random
) -> None:
    """Random prices that respect the rules: fixed prices at or above the parent's."""
    for channel in tree[1:]:
        await pricing.set_default_markup(db, channel.id, Decimal(rng.randint(0, 3000)) / 100)
    for channel in sorted(tree[1:], key=lambda c: c.level):
        how = rng.choice(["default", "markup", "price"])
        if how == "markup":
            markup = Decimal(rng.randint(0, 2500)) / 100
            await pricing.set_price(db, channel.id, product, price=None, markup_percent=markup)
        elif how == "price":
            path = await pricing.price_path(db, channel.path.rsplit(".", 1)[0], product)
            assert path is not None
            parent_price = resolve(path.cost, path.base_price, path.levels).price
            price = parent_price + Decimal(rng.randint(0, 500)) / 100
            await pricing.set_price(db, channel.id, product, price=price, markup_percent=None)


async def books_add_up(db: asyncpg.Connection[Any]) -> None:
    accounts = await ledger.trial_balance(db)
    assert sum(a.balance for a in accounts) == 0
    assert await ledger.replay_mismatches(db) == []
    # Earnings are owed to agents (a credit): under the price chain none is ever a debit
    assert all(a.balance <= 0 for a in accounts if a.account.kind is AccountKind.CHANNEL_EARNINGS)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32), steps=st.integers(5, 40))
async def test_random_sales_top_ups_and_refunds_keep_the_books(
    db: asyncpg.Connection[Any], seed: int, steps: int
) -> None:
    rng = random.Random(seed)
    run = uuid.uuid4().hex  # examples share the database: references must not collide
    async with db.transaction():
        tree = await make_tree(db, rng)
        cost = Decimal(rng.randint(100, 10_000)) / 100
        product = await make_product(db, cost, cost + Decimal(rng.randint(0, 2000)) / 100)
        await price_everyone(db, tree, product, rng)
    buyers = tree[1:]
    sales_made: list[int] = []
    refunded: set[int] = set()

    for step in range(steps):
        action = rng.choice(["top_up", "sale", "sale", "refund"])
        buyer = rng.choice(buyers)
        if action == "top_up":
            amount = Decimal(rng.randint(1, 500_000)) / 100
            await ledger.post(
                db,
                TransactionKind.TOP_UP,
                settlement.top_up(buyer.id, amount, settlement.PAYMENT_CLEARING),
                reference=f"{run}-top-up-{step}",
                channel_id=buyer.id,
            )
        elif action == "sale":
            try:
                async with db.transaction():
                    sold = await sales.settle(
                        db,
                        buyer_id=buyer.id,
                        buyer_path=buyer.path,
                        product_id=product,
                        quantity=rng.randint(1, 20),
                        reference=f"{run}-sale-{step}",
                    )
                sales_made.append(sold.transaction.id)
            except InsufficientBalance:
                pass
        elif sales_made:
            sale_id = rng.choice(sales_made)
            before = await balances(db)
            try:
                async with db.transaction():
                    refund = await sales.refund(db, sale_id, f"{run}-refund-{step}")
            except InsufficientBalance:
                continue
            if sale_id not in refunded:
                # A first refund gives every account back exactly what the sale gave it
                sale = await ledger.get_transaction(db, sale_id)
                assert sale is not None
                assert sorted(refund.postings, key=repr) == sorted(
                    settlement.mirror(sale.postings), key=repr
                )
                refunded.add(sale_id)
            else:
                assert refund.replayed
                assert await balances(db) == before
        await books_add_up(db)


async def balances(db: asyncpg.Connection[Any]) -> dict[int, Decimal]:
    return {
        r["id"]: r["balance"] for r in await db.fetch("SELECT id, balance FROM ledger_accounts")
    }


async def test_a_sale_pays_each_level_its_margin(db: asyncpg.Connection[Any]) -> None:
    # Given root -> A -> A1 -> A11, cost 80, base 90, A sells to A1 at 95, A1 marks up 10%
    root = await channels.root(db)
    a = await channels.insert_child(db, root.id, "A", [], [])
    a1 = await channels.insert_child(db, a.id, "A1", [], [])
    a11 = await channels.insert_child(db, a1.id, "A11", [], [])
    product = await make_product(db, Decimal(80), Decimal(90))
    await pricing.set_price(db, a1.id, product, price=Decimal(95), markup_percent=None)
    await pricing.set_default_markup(db, a1.id, Decimal(10))
    await ledger.post(
        db,
        TransactionKind.TOP_UP,
        settlement.top_up(a11.id, Decimal(1000), settlement.PAYMENT_CLEARING),
        reference="t",
    )

    # When A11 buys 2
    async with db.transaction():
        sold = await sales.settle(
            db,
            buyer_id=a11.id,
            buyer_path=a11.path,
            product_id=product,
            quantity=2,
            reference="order-1",
        )

    # Then A11 paid 2 x 104.50, the supplier gets 160, the platform 20, A 10, A1 19
    assert sold.unit_price == Decimal("104.50")
    assert sold.total == Decimal("209.00")
    assert {
        (p.account.kind.value, p.account.channel_id): p.amount for p in sold.transaction.postings
    } == {
        ("CHANNEL_WALLET", a11.id): Decimal("209.00"),
        ("SUPPLIER_PAYABLE", None): Decimal("-160.00"),
        ("PLATFORM_REVENUE", None): Decimal("-20.00"),
        ("CHANNEL_EARNINGS", a.id): Decimal("-10.00"),
        ("CHANNEL_EARNINGS", a1.id): Decimal("-19.00"),
    }
    assert await ledger.balance(db, settlement.wallet(a11.id)) == Decimal("-791.00")

    # And the same order reference settles nothing twice
    async with db.transaction():
        again = await sales.settle(
            db,
            buyer_id=a11.id,
            buyer_path=a11.path,
            product_id=product,
            quantity=2,
            reference="order-1",
        )
    assert again.transaction.id == sold.transaction.id
    assert await ledger.balance(db, settlement.wallet(a11.id)) == Decimal("-791.00")


@pytest.mark.parametrize("quantity", [1, 3])
async def test_an_inverted_chain_refuses_the_sale(
    db: asyncpg.Connection[Any], quantity: int
) -> None:
    # Given A1's fixed price that ended below what A pays after A's price rose

    root = await channels.root(db)
    a = await channels.insert_child(db, root.id, "A", [], [])
    a1 = await channels.insert_child(db, a.id, "A1", [], [])
    product = await make_product(db, Decimal(10), Decimal(12))
    await pricing.set_price(db, a1.id, product, price=Decimal(13), markup_percent=None)
    await pricing.set_price(db, a.id, product, price=Decimal(14), markup_percent=None)

    # Then a sale to A1 is refused and nothing is posted
    with pytest.raises(PriceBelowCost):
        await sales.settle(
            db,
            buyer_id=a1.id,
            buyer_path=a1.path,
            product_id=product,
            quantity=quantity,
            reference="x",
        )
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions") == 0
