"""REALTIME orders against the supplier simulator in its own process: codes bought the
moment the buyer pays, never twice, money back when the supplier fails, 补单 with the same
ref, and a circuit breaker that keeps an outage from slowing anything else down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from settings import Settings
from tests.conftest import Api, Node
from tests.e2e.test_catalog import CREATE_SUPPLIER, create_product
from tests.e2e.test_ledger_api import TRIAL_BALANCE, funded
from tests.e2e.test_orders import PLACE, order_input, stocked_product, wallet
from tests.simulator import SECRET, Simulator, admin, simulator

RETRY = """
mutation($input: RetryFulfilmentInput!) {
  retryFulfilment(input: $input) {
    order { id status total }
    codes { id code password }
    userErrors { field code message }
  }
}
"""
PRICE = Decimal("25.00")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "allow_private_targets": True,
            "supplier_retry_base_seconds": 0.01,
            "supplier_timeout_seconds": 2,
            "supplier_breaker_failures": 3,
            "supplier_breaker_seconds": 0.5,
        }
    )


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[Simulator]:
    with simulator(tmp_path, "--failure-rate", "0.3", "--latency-ms", "30") as running:
        yield running


async def realtime_product(api: Api, platform_key: str, sim: Simulator) -> str:
    created = await api.data(
        CREATE_SUPPLIER,
        {"input": {"name": "Simulator", "baseUrl": sim.url, "secret": SECRET.decode()}},
        token=platform_key,
    )
    supplier = created["createSupplier"]["supplier"]["id"]
    product = await create_product(
        api,
        platform_key,
        fulfilment="REALTIME",
        supplierId=supplier,
        supplierSku="GAME-100",
    )
    product_id: str = product["id"]
    return product_id


async def test_two_hundred_orders_against_a_flaky_supplier_buy_each_code_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], flaky: Simulator
) -> None:
    # Given a REALTIME product from a supplier that fails 30% of its calls (half of those
    # after it has sold the codes), and agent A with money for 1,000 codes
    product = await realtime_product(api, tree["root"].key, flaky)
    await funded(api, tree["root"].key, tree["A"].id, "25000.00", "bank-1")

    # When 200 orders arrive at once
    results = await asyncio.gather(
        *(api.data(PLACE, order_input(product, f"rt-{i}"), token=tree["A"].key) for i in range(200))
    )

    # Then each is PAID with its one code or FAILED with its money back, never in between
    payloads = [r["placeOrder"] for r in results]
    paid = [p for p in payloads if p["order"]["status"] == "PAID"]
    failed = [p for p in payloads if p["order"]["status"] == "FAILED"]
    assert len(paid) + len(failed) == 200
    assert all(len(p["codes"]) == 1 and p["userErrors"] == [] for p in paid)
    assert all(
        p["codes"] == [] and [e["code"] for e in p["userErrors"]] == ["SUPPLIER_UNAVAILABLE"]
        for p in failed
    )
    assert len({p["codes"][0]["code"] for p in paid}) == len(paid)
    assert await wallet(db, tree["A"]) == Decimal("25000.00") - PRICE * len(paid)
    # And the supplier sold each order's codes at most once
    stats = await admin(flaky, "GET", "/stats")
    assert set(stats["refs"].values()) <= {1}

    # When the failed ones are placed again (补单), until the supplier delivers them
    pending = [p["order"]["id"] for p in failed]
    for _ in range(6):
        retried = await asyncio.gather(
            *(api.data(RETRY, {"input": {"orderId": o}}, token=tree["A"].key) for o in pending)
        )
        pending = [
            o
            for o, r in zip(pending, retried, strict=True)
            if r["retryFulfilment"]["order"]["status"] != "PAID"
        ]
        if not pending:
            break
    assert pending == []

    # Then every order is PAID once, the supplier still sold each ref once, and the books
    # balance with 200 sales paid
    statuses = await db.fetch("SELECT status, count(*) FROM orders GROUP BY status")
    assert {r["status"]: r["count"] for r in statuses} == {"PAID": 200}
    assert await db.fetchval("SELECT count(*) FROM order_codes") == 200
    stats = await admin(flaky, "GET", "/stats")
    assert set(stats["refs"].values()) == {1}
    assert await wallet(db, tree["A"]) == Decimal("25000.00") - PRICE * 200
    trial = await api.data(TRIAL_BALANCE, token=tree["root"].key)
    assert Decimal(trial["trialBalance"]["total"]) == 0


async def test_a_supplier_outage_fails_fast_and_pool_products_keep_selling(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    with simulator(tmp_path) as sim:
        realtime = await realtime_product(api, tree["root"].key, sim)
        port = sim.port
    pooled = await stocked_product(api, tree["root"].key, 10)
    await funded(api, tree["root"].key, tree["A"].id, "1000.00", "bank-1")

    # Given the supplier is down and three orders found out (the breaker's threshold)
    for i in range(3):
        body = await api.data(PLACE, order_input(realtime, f"down-{i}"), token=tree["A"].key)
        assert body["placeOrder"]["order"]["status"] == "FAILED"
    orders_before = await db.fetchval("SELECT count(*) FROM orders")

    # When more REALTIME orders arrive
    started = time.perf_counter()
    refused = await asyncio.gather(
        *(
            api.data(PLACE, order_input(realtime, f"fast-{i}"), token=tree["A"].key)
            for i in range(10)
        )
    )
    elapsed = time.perf_counter() - started

    # Then they are refused at once, with no order and no money taken
    assert all(
        r["placeOrder"]["order"] is None
        and [e["code"] for e in r["placeOrder"]["userErrors"]] == ["SUPPLIER_UNAVAILABLE"]
        for r in refused
    )
    assert elapsed < 2
    assert await db.fetchval("SELECT count(*) FROM orders") == orders_before
    assert await wallet(db, tree["A"]) == Decimal("1000.00")
    # And the pool product still sells
    sold = await api.data(PLACE, order_input(pooled, "pool-1"), token=tree["A"].key)
    assert sold["placeOrder"]["order"]["status"] == "PAID"

    # When the supplier is back and the breaker's cool-down has passed
    with simulator(tmp_path, port=port):
        await asyncio.sleep(0.6)
        body = await api.data(PLACE, order_input(realtime, "back-1"), token=tree["A"].key)

        # Then orders are bought again
        assert body["placeOrder"]["order"]["status"] == "PAID"
        assert len(body["placeOrder"]["codes"]) == 1


async def _paid_then_stopped(services: Any, product_id: str, buyer: Node, key: str) -> int:
    """What a process leaves behind when it dies right after taking the payment and before
    the supplier answered: an order FULFILLING, its purchase's lease run out."""
    from domain.orders import sale_reference
    from persistence import orders, sales, supplier_orders
    from schema import ids

    product = ids.decode("Product", product_id)
    channel = ids.decode("Channel", buyer.id)
    assert product is not None
    assert channel is not None
    path = await orders.channel_path(services.db, channel)
    sale = sales.quote_from(
        await sales.terms(services.db, path, product), buyer_id=channel, quantity=1
    )
    async with services.db.acquire() as conn, conn.transaction():
        order = await supplier_orders.insert_order(
            conn,
            channel_id=channel,
            product_id=product,
            idempotency_key=key,
            input_hash="-",
            quantity=1,
            unit_price=sale.chain.price,
            total=sale.chain.price,
            buyer={},
            delivery=[],
        )
        settled = await sales.post(conn, sale, sale_reference(channel, key))
        await supplier_orders.charge(conn, order.id, settled.transaction.id, PRICE, PRICE)
        supplier = await conn.fetchval("SELECT supplier_id FROM products WHERE id = $1", product)
        await supplier_orders.insert(
            conn,
            order_id=order.id,
            supplier_id=supplier,
            sku="GAME-100",
            quantity=1,
            lease_seconds=0,
        )
    return order.id


async def test_a_purchase_left_unfinished_by_a_dead_process_is_completed_once(
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    server: Any,
    tmp_path: Path,
) -> None:
    from integrations.suppliers import HttpSupplier
    from persistence.supplier_orders import supplier_ref
    from resolvers.realtime import SupplierOrderRecovery

    with simulator(tmp_path) as sim:
        product = await realtime_product(api, tree["root"].key, sim)
        await funded(api, tree["root"].key, tree["A"].id, "100.00", "bank-1")
        services = server.app.state.services
        # Given two orders paid by a process that died: the supplier never heard of the
        # first; it had sold the second's codes when the process died
        never_asked = await _paid_then_stopped(services, product, tree["A"], "crash-1")
        sold_before = await _paid_then_stopped(services, product, tree["A"], "crash-2")
        async with HttpSupplier(sim.url, SECRET, allow_private=True) as supplier:
            bought = await supplier.place(supplier_ref(sold_before), "GAME-100", 1)

        # When the recovery pass runs
        assert await SupplierOrderRecovery(services).run_once() == 2

        # Then both orders are PAID with one code each, the second with the codes the
        # supplier sold before, and the supplier sold each purchase once
        rows = await db.fetch("SELECT id, status FROM orders ORDER BY id")
        assert [(r["id"], r["status"]) for r in rows] == [
            (never_asked, "PAID"),
            (sold_before, "PAID"),
        ]
        stored = await db.fetchval(
            "SELECT c.fingerprint FROM codes c JOIN order_codes oc ON oc.code_id = c.id"
            " WHERE oc.order_id = $1",
            sold_before,
        )
        assert stored == services.keyring.fingerprint(bought.codes[0].code)
        stats = await admin(sim, "GET", "/stats")
        assert stats["refs"] == {supplier_ref(never_asked): 1, supplier_ref(sold_before): 1}
        assert await wallet(db, tree["A"]) == Decimal("100.00") - 2 * PRICE


async def test_concurrent_retries_of_one_key_buy_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    with simulator(tmp_path, "--latency-ms", "50") as sim:
        # Given a REALTIME product and money for it
        product = await realtime_product(api, tree["root"].key, sim)
        await funded(api, tree["root"].key, tree["A"].id, "1000.00", "bank-1")

        # When 30 retries of one order arrive at once
        answers = await asyncio.gather(
            *(api.data(PLACE, order_input(product, "once"), token=tree["A"].key) for _ in range(30))
        )

        # Then there is one order, paid once, bought from the supplier once
        assert all(a["placeOrder"]["userErrors"] == [] for a in answers)
        assert len({a["placeOrder"]["order"]["id"] for a in answers}) == 1
        assert await db.fetchval("SELECT count(*) FROM orders") == 1
        assert await wallet(db, tree["A"]) == Decimal("1000.00") - PRICE
        stats = await admin(sim, "GET", "/stats")
        assert list(stats["refs"].values()) == [1]
        # And whoever was answered after it was paid got its one code
        codes = {c["code"] for a in answers for c in a["placeOrder"]["codes"]}
        assert len(codes) == 1
