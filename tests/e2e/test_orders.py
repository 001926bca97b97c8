"""placeOrder through real HTTP: exactly-once codes, exact money, idempotent retries."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from domain.codegen import valid
from tests.conftest import Api, Node
from tests.e2e.test_auth import issue_key
from tests.e2e.test_catalog import create_product
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_pools import CREATE_POOL, IMPORT

PLACE = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { id status quantity unitPrice total codes { id masked status } }
    codes { id code password }
    userErrors { field code message }
  }
}
"""


async def stocked_product(api: Api, platform_key: str, codes: int) -> str:
    """A product at base price 25.00 with a pool of ``codes`` codes."""
    product = await create_product(api, platform_key)
    pool = (
        await api.data(
            CREATE_POOL,
            {"input": {"productId": product["id"], "name": "main"}},
            token=platform_key,
        )
    )["createPool"]["pool"]["id"]
    rows = [{"code": f"CARD-{i:06d}-XYZ", "password": f"pw{i}"} for i in range(codes)]
    imported = await api.data(
        IMPORT, {"input": {"poolId": pool, "codes": rows}}, token=platform_key
    )
    assert imported["importCodes"]["imported"] == codes
    product_id: str = product["id"]
    return product_id


def order_input(product: str, key: str, quantity: int = 1) -> dict[str, Any]:
    return {"input": {"idempotencyKey": key, "productId": product, "quantity": quantity}}


async def orders_at_once(api: Api, buyer: Node, product: str, count: int) -> list[Any]:
    """``count`` orders of one code each, each with its own key, sent together."""
    results = await asyncio.gather(
        *(
            api.data(PLACE, order_input(product, f"order-{i}"), token=buyer.key)
            for i in range(count)
        )
    )
    return [r["placeOrder"] for r in results]


async def wallet(db: asyncpg.Connection[Any], node: Node) -> Decimal:
    from schema import ids

    channel = ids.decode("Channel", node.id)
    raw = await db.fetchval(
        "SELECT balance FROM ledger_accounts WHERE kind = 'CHANNEL_WALLET' AND channel_id = $1",
        channel,
    )
    return -(raw or Decimal(0))


async def test_five_hundred_buyers_three_hundred_codes(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a pool of 300 codes and agent A with money for 1,000 of them (25.00 each)
    product = await stocked_product(api, tree["root"].key, 300)
    await funded(api, tree["root"].key, tree["A"].id, "25000.00", "bank-1")

    # When 500 orders of one code arrive at once
    payloads = await orders_at_once(api, tree["A"], product, 500)

    # Then exactly 300 are paid, with 300 distinct codes, and 200 are out of stock
    paid = [p for p in payloads if p["order"] and p["order"]["status"] == "PAID"]
    refused = [p["userErrors"] for p in payloads if p["userErrors"]]
    assert len(paid) == 300
    assert (
        refused
        == [
            [
                {
                    "field": ["quantity"],
                    "code": "OUT_OF_STOCK",
                    "message": "Not enough codes in stock.",
                }
            ]
        ]
        * 200
    )
    codes = [c["code"] for p in paid for c in p["codes"]]
    assert len(codes) == len(set(codes)) == 300
    assert all(len(p["codes"]) == 1 and p["order"]["total"] == "25.00" for p in paid)

    # And the wallet paid exactly 300 x 25.00, the ledger balances, the database agrees
    assert await wallet(db, tree["A"]) == Decimal("25000.00") - 300 * Decimal("25.00")
    assert await db.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger_entries") == 0
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'sold'") == 300
    assert await db.fetchval("SELECT count(DISTINCT code_id) FROM order_codes") == 300
    assert await db.fetchval("SELECT sold FROM pools") == 300


async def test_retries_with_one_key_make_one_order(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given stock and money
    product = await stocked_product(api, tree["root"].key, 20)
    await funded(api, tree["root"].key, tree["A"].id, "1000.00", "bank-1")

    # When one order is sent 50 times at once with the same key
    results = await asyncio.gather(
        *(api.data(PLACE, order_input(product, "same", 2), token=tree["A"].key) for _ in range(50))
    )

    # Then there is one order, and all 50 got the same answer, codes included
    answers = {repr(r["placeOrder"]) for r in results}
    assert len(answers) == 1
    first = results[0]["placeOrder"]
    assert first["order"]["status"] == "PAID"
    assert len(first["codes"]) == 2
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await wallet(db, tree["A"]) == Decimal("950.00")

    # And the same key with another quantity is a conflict that changes nothing
    conflict = await api.data(PLACE, order_input(product, "same", 3), token=tree["A"].key)
    assert conflict["placeOrder"]["userErrors"] == [
        {
            "field": ["idempotencyKey"],
            "code": "IDEMPOTENCY_CONFLICT",
            "message": "This idempotency key was used for a different order.",
        }
    ]
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_an_order_the_balance_cannot_pay_takes_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given 10.00 in A's wallet and codes at 25.00
    product = await stocked_product(api, tree["root"].key, 5)
    await funded(api, tree["root"].key, tree["A"].id, "10.00", "bank-1")

    # When A orders one
    refused = await api.data(PLACE, order_input(product, "k"), token=tree["A"].key)

    # Then it is refused, and no code, order or posting was made
    assert refused["placeOrder"] == {
        "order": None,
        "codes": [],
        "userErrors": [
            {
                "field": None,
                "code": "INSUFFICIENT_BALANCE",
                "message": "The balance cannot pay for this order.",
            }
        ],
    }
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    assert await db.fetchval("SELECT available FROM pools") == 5
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'available'") == 5
    assert await wallet(db, tree["A"]) == Decimal("10.00")


async def test_concurrent_orders_never_spend_more_than_the_wallet_holds(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given codes at 25.00 and a wallet that pays for exactly 8 of them
    product = await stocked_product(api, tree["root"].key, 40)
    await funded(api, tree["root"].key, tree["A"].id, "200.00", "bank-1")

    # When A sends 40 orders at once, each with its own key
    placed = await orders_at_once(api, tree["A"], product, 40)

    # Then 8 are paid, each with its own code, and the other 32 are refused for the balance
    paid = [p for p in placed if p["order"] is not None]
    assert len(paid) == 8
    assert all(p["order"]["status"] == "PAID" and len(p["codes"]) == 1 for p in paid)
    assert len({p["codes"][0]["code"] for p in paid}) == 8
    assert sorted({e["code"] for p in placed for e in p["userErrors"]}) == ["INSUFFICIENT_BALANCE"]
    assert sum(1 for p in placed if p["userErrors"]) == 32

    # And the wallet is empty to the cent, the refused took no code, and the books balance
    assert await wallet(db, tree["A"]) == Decimal("0.00")
    assert await db.fetchval("SELECT count(*) FROM orders") == 8
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'sold'") == 8
    assert await db.fetchval("SELECT available FROM pools") == 32
    assert await db.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger_entries") == 0


async def test_codes_are_plain_for_the_buyer_only_and_every_reveal_is_logged(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order placed by A1 (its parent A sells at base + A's default markup 0)
    product = await stocked_product(api, tree["root"].key, 3)
    await funded(api, tree["root"].key, tree["A1"].id, "100.00", "bank-1")
    placed = (await api.data(PLACE, order_input(product, "k", 2), token=tree["A1"].key))[
        "placeOrder"
    ]
    order_id = placed["order"]["id"]
    plain = sorted(c["code"] for c in placed["codes"])

    # When A1 reveals its codes, and its parent A tries to
    own = await api.data(
        "mutation($id: ID!) { revealCodes(input: {orderId: $id}) { codes { code } "
        "userErrors { code } } }",
        {"id": order_id},
        token=tree["A1"].key,
    )
    parent = await api.data(
        "mutation($id: ID!) { revealCodes(input: {orderId: $id}) { codes { code } "
        "userErrors { code } } }",
        {"id": order_id},
        token=tree["A"].key,
    )
    sibling = await api.data(
        "query($id: ID!) { order(id: $id) { id } }", {"id": order_id}, token=tree["B"].key
    )

    # Then A1 gets them again, A sees the order masked but not the codes, B not at all
    assert sorted(c["code"] for c in own["revealCodes"]["codes"]) == plain
    assert parent["revealCodes"] == {"codes": [], "userErrors": [{"code": "FORBIDDEN"}]}
    assert sibling["order"] is None
    seen = await api.data(
        "query($id: ID!) { order(id: $id) { codes { masked } } }",
        {"id": order_id},
        token=tree["A"].key,
    )
    masked = [c["masked"] for c in seen["order"]["codes"]]
    assert all(m.startswith("••••") and m[4:] in "".join(plain) for m in masked)
    assert not any(p in m for p in plain for m in masked)
    # And the sale, the delivery and the reveal are recorded per code (beside the import
    # of the pool's three)
    kinds = await db.fetch("SELECT kind, count(*) AS n FROM code_events GROUP BY kind")
    assert {r["kind"]: r["n"] for r in kinds} == {
        "IMPORTED": 3,
        "SOLD": 2,
        "DELIVERED": 2,
        "REVEALED": 2,
    }


async def test_a_verifier_neither_buys_nor_sees_orders(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A's order, and a VERIFIER key of A's (a merchant's till)
    product = await stocked_product(api, tree["root"].key, 3)
    await funded(api, tree["root"].key, tree["A"].id, "100.00", "bank-1")
    placed = (await api.data(PLACE, order_input(product, "k"), token=tree["A"].key))["placeOrder"]
    order_id = placed["order"]["id"]
    till = await issue_key(api, tree["A"].key, tree["A"].id, "VERIFIER")
    before = await db.fetch("SELECT * FROM orders ORDER BY id")
    events = await db.fetchval("SELECT count(*) FROM code_events")
    balance = await wallet(db, tree["A"])

    # When the till places an order, reveals the codes of A's, and reads A's orders
    bought = await api.data(PLACE, order_input(product, "till-1"), token=till.key)
    revealed = await api.data(
        "mutation($id: ID!) { revealCodes(input: {orderId: $id}) { codes { code } "
        "userErrors { field code message } } }",
        {"id": order_id},
        token=till.key,
    )
    read = await api.raw(
        "query($id: ID!) { order(id: $id) { id } }", {"id": order_id}, token=till.key
    )
    listed = await api.raw("{ orders(first: 5) { nodes { id } } }", token=till.key)

    # Then each is refused: no order, no money spent, no code shown or revealed
    assert bought["placeOrder"]["userErrors"] == [
        {
            "field": None,
            "code": "FORBIDDEN",
            "message": "Verifiers redeem codes; they do not place orders.",
        }
    ]
    assert bought["placeOrder"]["codes"] == []
    assert revealed["revealCodes"] == {
        "codes": [],
        "userErrors": [
            {"field": None, "code": "FORBIDDEN", "message": "Verifiers do not see orders' codes."}
        ],
    }
    for refused in (read, listed):
        assert [(e["message"], e["extensions"]["code"]) for e in refused["errors"]] == [
            ("Verifiers redeem codes; they do not read orders.", "FORBIDDEN")
        ]
    assert await db.fetch("SELECT * FROM orders ORDER BY id") == before
    assert await db.fetchval("SELECT count(*) FROM code_events") == events
    assert await wallet(db, tree["A"]) == balance


async def test_a_document_of_two_orders_places_only_the_one_named(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a document with two placeOrder operations
    product = await stocked_product(api, tree["root"].key, 3)
    await funded(api, tree["root"].key, tree["A"].id, "100.00", "bank-1")
    document = " ".join(
        f'mutation {name} {{ placeOrder(input: {{idempotencyKey: "{name}", productId: '
        f'"{product}", quantity: 1}}) {{ order {{ id }} userErrors {{ code }} }} }}'
        for name in ("a", "b")
    )

    async def send(operation: str | None) -> dict[str, Any]:
        response = await api.http.post(
            api.url,
            json={"query": document, "operationName": operation},
            headers={"Authorization": f"Bearer {tree['A'].key}"},
        )
        assert response.status_code < 500, response.text
        body: dict[str, Any] = response.json()
        return body

    # When it is sent without an operation name
    ambiguous = await send(None)

    # Then nothing is placed, and the caller is told to choose
    assert [(e["message"], e["extensions"]["code"]) for e in ambiguous["errors"]] == [
        (
            "This document holds several operations: give `operationName` to choose one.",
            "BAD_REQUEST",
        )
    ]
    assert await db.fetchval("SELECT count(*) FROM orders") == 0

    # When it is sent naming the second, then only that one is placed
    chosen = await send("b")
    assert chosen["data"]["placeOrder"]["userErrors"] == []
    keys = await db.fetch("SELECT idempotency_key FROM orders")
    assert [r["idempotency_key"] for r in keys] == ["b"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"quantity": 0}, ("quantity", "INVALID_INPUT")),
        ({"quantity": 101}, ("quantity", "INVALID_INPUT")),
        ({"productId": "UHJvZHVjdDo5OTk="}, ("productId", "PRODUCT_NOT_VISIBLE")),
        ({"delivery": [{"method": "EMAIL"}]}, ("delivery.0.target", "INVALID_INPUT")),
        (
            {"delivery": [{"method": "LINK"}, {"method": "SMS", "target": "12345"}]},
            ("delivery.1.target", "INVALID_INPUT"),
        ),
        ({"idempotencyKey": ""}, ("idempotencyKey", "INVALID_INPUT")),
    ],
)
async def test_bad_orders_are_refused_and_change_nothing(
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    change: dict[str, Any],
    error: tuple[str, str],
) -> None:
    product = await stocked_product(api, tree["root"].key, 2)
    await funded(api, tree["root"].key, tree["A"].id, "100.00", "bank-1")
    given = order_input(product, "k")["input"] | change

    refused = await api.data(PLACE, {"input": given}, token=tree["A"].key)

    errors = refused["placeOrder"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [([error[0]], error[1])]
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    assert await db.fetchval("SELECT available FROM pools") == 2


async def test_generated_products_issue_fresh_valid_codes(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a GENERATED product valid 30 days, and money
    product = (
        await create_product(api, tree["root"].key, fulfilment="GENERATED", validityDays=30)
    )["id"]
    await funded(api, tree["root"].key, tree["A"].id, "200.00", "bank-1")

    # When A orders 3, twice
    first = (await api.data(PLACE, order_input(product, "g1", 3), token=tree["A"].key))[
        "placeOrder"
    ]
    second = (await api.data(PLACE, order_input(product, "g2", 3), token=tree["A"].key))[
        "placeOrder"
    ]

    # Then each order holds 3 new codes with a valid check character, none repeated
    codes = [c["code"] for p in (first, second) for c in p["codes"]]
    assert first["order"]["status"] == second["order"]["status"] == "PAID"
    assert len(set(codes)) == 6
    assert all(valid(c) for c in codes)
    # And they expire in 30 days, were paid for, and are stored only encrypted
    days = await db.fetchval(
        "SELECT min(extract(day from expires_at - now())) FROM codes WHERE status = 'sold'"
    )
    assert 29 <= days <= 30
    assert await wallet(db, tree["A"]) == Decimal("200.00") - 6 * Decimal("25.00")
    assert await db.fetchval("SELECT sold FROM pools WHERE name = 'generated'") == 6
    raw = await db.fetch("SELECT code_ciphertext FROM codes")
    assert not any(c.encode() in r["code_ciphertext"] for c in codes for r in raw)
