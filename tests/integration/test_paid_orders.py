"""Paid orders sold by a pool's actor in batches: one statement per batch, each order on
its own (see persistence.order_batches and migration 0012)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg

from actors.messages import Sold
from actors.registry import PoolRegistry
from domain import settlement
from domain.ledger import TransactionKind
from domain.orders import sale_reference
from persistence import channels, ledger, sales
from persistence.ledger import InsufficientBalance
from persistence.order_batches import PaidOrder, SoldOrder
from persistence.orders import DuplicateOrder
from tests.integration.pool_fixtures import counters, make_pool, make_product, registry

__all__ = ["registry"]


async def funded_buyer(
    db: asyncpg.Connection[Any], name: str, amount: str
) -> channels.ChannelRecord:
    root = await channels.root(db)
    buyer = await channels.insert_child(db, root.id, name, [], [])
    if Decimal(amount):
        await ledger.post(
            db,
            TransactionKind.TOP_UP,
            settlement.top_up(buyer.id, Decimal(amount), settlement.PAYMENT_CLEARING),
            reference=f"top-up {name}",
        )
    return buyer


async def paid_order(
    db: asyncpg.Connection[Any], pool_id: int, product_id: int, buyer: Any, key: str
) -> PaidOrder:
    terms = await sales.terms(db, buyer.path, product_id)
    quote = sales.quote_from(terms, buyer_id=buyer.id, quantity=1)
    return PaidOrder(
        pool_id,
        buyer.id,
        product_id,
        key,
        f"digest of {key}",
        {},
        quote,
        sale_reference(buyer.id, key),
        "test",
    )


async def test_one_batch_holds_a_retry_a_refusal_and_good_orders_each_answered_alone(
    registry: PoolRegistry, db: asyncpg.Connection[Any]
) -> None:
    # Given a pool of 10 codes at 95.00, a buyer who can pay for 3 and one who cannot pay
    product = await make_product(db)
    pool_id = await make_pool(db, 10, product)
    rich = await funded_buyer(db, "rich", "285.00")
    poor = await funded_buyer(db, "poor", "0")
    orders = [
        await paid_order(db, pool_id, product, rich, "a"),
        await paid_order(db, pool_id, product, rich, "b"),
        await paid_order(db, pool_id, product, poor, "c"),
        await paid_order(db, pool_id, product, rich, "b"),
        await paid_order(db, pool_id, product, rich, "d"),
    ]

    # When they arrive together behind a first order, so that they travel as one batch
    first = asyncio.ensure_future(registry.sell(pool_id, orders[0].ref, 1, orders[0]))
    await asyncio.sleep(0)
    rest = await asyncio.gather(
        *(registry.sell(pool_id, order.ref, 1, order) for order in orders[1:]),
        return_exceptions=True,
    )
    answers = [await first, *rest]

    # Then each is answered on its own: the retry of b is a duplicate, c cannot pay
    assert [type(a).__name__ for a in answers] == [
        "Sold",
        "Sold",
        "InsufficientBalance",
        "DuplicateOrder",
        "Sold",
    ]
    assert isinstance(answers[2], InsufficientBalance)
    assert isinstance(answers[3], DuplicateOrder)
    sold = [a for a in answers if isinstance(a, Sold)]
    assert [s.result.record.idempotency_key for s in sold] == ["a", "b", "d"]
    assert all(isinstance(s.result, SoldOrder) for s in sold)
    assert len({code for s in sold for code in s.code_ids}) == 3

    # And the database holds exactly those three orders, their codes and their money
    assert await db.fetchval("SELECT count(*) FROM orders") == 3
    assert await db.fetchval("SELECT count(*) FROM order_codes") == 3
    assert await counters(db, pool_id) == {"available": 7, "sold": 3}
    assert await ledger.balance(db, settlement.wallet(rich.id)) == Decimal("0.00")
    assert await ledger.balance(db, settlement.wallet(poor.id)) == Decimal("0.00")
    accounts = await ledger.trial_balance(db)
    assert sum(a.balance for a in accounts) == 0
