"""Unpaid orders expire by themselves; a payment that arrives later is never dropped."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from settings import Settings
from tests.conftest import Api, LiveServer, Node
from tests.e2e.payment_helpers import ORDER, callback, ledger_total, place_external
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input, stocked_product, wallet


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Orders wait one second for their payment; the sweeps run every 0.1 s."""
    return settings.model_copy(
        update={"order_payment_ttl_seconds": 1.0, "reservation_sweep_seconds": 0.1}
    )


async def expired(api: Api, token: str, order_id: str) -> dict[str, Any]:
    """The order once it has expired by itself (within 5 s)."""
    for _ in range(100):
        seen: dict[str, Any] = (await api.data(ORDER, {"id": order_id}, token=token))["order"]
        if seen["status"] != "AWAITING_PAYMENT":
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError("the order did not expire")


async def test_expiry_releases_the_codes_by_itself(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order holding 2 of 3 codes
    product = await stocked_product(api, tree["root"].key, 3)
    order = (await place_external(api, tree["A"].key, product, "ext-1", 2))["order"]
    assert await db.fetchrow("SELECT available, reserved FROM pools") == (1, 2)

    # When nobody pays for it
    seen = await expired(api, tree["A"].key, order["id"])

    # Then it is EXPIRED, holds no codes, and its codes are free again
    assert seen["status"] == "EXPIRED"
    assert seen["statusReason"] == "Not paid before the reservation expired."
    assert seen["codes"] == []
    assert await db.fetchrow("SELECT available, reserved FROM pools") == (3, 0)
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'available'") == 3


async def test_a_late_payment_is_fulfilled_from_stock(
    api: Api, server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order that expired
    product = await stocked_product(api, tree["root"].key, 3)
    order = (await place_external(api, tree["A"].key, product, "ext-1", 2))["order"]
    await expired(api, tree["A"].key, order["id"])

    # When its payment arrives late, twice
    answers = [await callback(server, order["paymentReference"], "gw-1", "50.00") for _ in "12"]

    # Then it is fulfilled with 2 fresh codes, once
    assert [(a.status_code, a.json()["orderStatus"]) for a in answers] == [(200, "PAID")] * 2
    seen = (await api.data(ORDER, {"id": order["id"]}, token=tree["A"].key))["order"]
    assert seen["status"] == "PAID"
    assert [c["status"] for c in seen["codes"]] == ["SOLD", "SOLD"]
    assert [p["outcome"] for p in seen["payments"]] == ["FULFILLED"]
    assert await db.fetchrow("SELECT available, reserved, sold FROM pools") == (1, 0, 2)
    assert await ledger_total(db) == 0


async def test_a_late_payment_without_stock_is_credited_to_the_wallet(
    api: Api, server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A's order of the only code expired, and B bought that code meanwhile
    product = await stocked_product(api, tree["root"].key, 1)
    order = (await place_external(api, tree["A"].key, product, "ext-1"))["order"]
    await expired(api, tree["A"].key, order["id"])
    await funded(api, tree["root"].key, tree["B"].id, "25.00", "bank-1")
    bought = await api.data(PLACE, order_input(product, "b-1"), token=tree["B"].key)
    assert bought["placeOrder"]["order"]["status"] == "PAID"

    # When A's payment arrives, three times
    answers = [await callback(server, order["paymentReference"], "gw-1", "25.00") for _ in "123"]

    # Then it is not lost: the order is REFUNDED to A's wallet, once
    assert {(a.status_code, a.json()["orderStatus"], a.json()["outcome"]) for a in answers} == {
        (200, "REFUNDED", "CREDITED")
    }
    seen = (await api.data(ORDER, {"id": order["id"]}, token=tree["A"].key))["order"]
    assert seen["status"] == "REFUNDED"
    assert seen["statusReason"] == (
        "Paid after its reservation expired, with no stock left: "
        "the payment was credited to the channel's balance."
    )
    assert seen["payments"] == [
        {"transactionId": "gw-1", "amount": "25.00", "source": "CALLBACK", "outcome": "CREDITED"}
    ]
    assert await wallet(db, tree["A"]) == Decimal("25.00")
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'sold'") == 1
    assert await ledger_total(db) == 0


async def reservation_lapsed_before_its_order(db: asyncpg.Connection[Any]) -> None:
    """The unpaid order's reservation runs out a moment before the order itself expires,
    and the sweeper returns its only code to stock."""
    await db.execute("UPDATE orders SET expires_at = now() + interval '1 hour'")
    await db.execute(
        "UPDATE codes SET reserved_until = now() - interval '1 second' WHERE status = 'reserved'"
    )
    for _ in range(100):
        if await db.fetchval("SELECT available FROM pools") == 1:
            break
        await asyncio.sleep(0.05)


async def test_codes_the_sweeper_returned_are_sold_again_before_the_order_expires(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an unpaid order holding the only code, whose reservation ran out a moment
    # before the order itself expires (the sweeper returns the code first)
    product = await stocked_product(api, tree["root"].key, 1)
    await funded(api, tree["root"].key, tree["A"].id, "100.00", "bank-1")
    held = await place_external(api, tree["A"].key, product, "held")
    await reservation_lapsed_before_its_order(db)

    # When another order buys the code
    bought = await api.data(PLACE, order_input(product, "next"), token=tree["A"].key)

    # Then it is sold to it alone, and the unpaid order holds it no more
    assert bought["placeOrder"]["order"]["status"] == "PAID"
    rows = await db.fetch("SELECT order_id FROM order_codes")
    assert [r["order_id"] for r in rows] == [int(await _order_key(db, "next"))]
    assert held["order"]["status"] == "AWAITING_PAYMENT"


async def test_codes_the_sweeper_returned_are_held_again_for_another_unpaid_order(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an unpaid order holding the only code, whose reservation ran out a moment
    # before the order itself expires (the sweeper returns the code first)
    product = await stocked_product(api, tree["root"].key, 1)
    first = await place_external(api, tree["A"].key, product, "first")
    await reservation_lapsed_before_its_order(db)

    # When another unpaid order takes the code
    second = await place_external(api, tree["A"].key, product, "second")

    # Then the code is held for it alone, and the first order holds it no more
    assert second["order"]["status"] == "AWAITING_PAYMENT"
    rows = await db.fetch("SELECT order_id FROM order_codes")
    assert [r["order_id"] for r in rows] == [await _order_key(db, "second")]
    assert first["order"]["status"] == "AWAITING_PAYMENT"


async def _order_key(db: asyncpg.Connection[Any], key: str) -> int:
    order_id: int = await db.fetchval("SELECT id FROM orders WHERE idempotency_key = $1", key)
    return order_id
