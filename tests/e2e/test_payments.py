"""EXTERNAL payment through real HTTP and WebSocket: callbacks, confirmation, cancel, refund."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import connect

from domain.payments import sign
from tests.conftest import Api, LiveServer, Node
from tests.e2e.payment_helpers import (
    ORDER,
    callback,
    ledger_total,
    place_external,
    secret_of,
    state,
)
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input, stocked_product, wallet

CANCEL = """
mutation($id: ID!, $reason: String) {
  cancelOrder(input: {orderId: $id, reason: $reason}) {
    order { id status statusReason codes { id } }
    userErrors { field code message }
  }
}
"""

REFUND = """
mutation($id: ID!, $codes: [ID!], $reason: String) {
  refundOrder(input: {orderId: $id, codeIds: $codes, reason: $reason}) {
    order { id status statusReason codes { id status } }
    userErrors { field code message }
  }
}
"""

CONFIRM = """
mutation($id: ID!, $reference: String!) {
  confirmPayment(input: {orderId: $id, reference: $reference}) {
    order { id status }
    payment { transactionId amount source outcome }
    userErrors { field code message }
  }
}
"""


async def clearing(db: asyncpg.Connection[Any]) -> Decimal:
    raw = await db.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e"
        " JOIN ledger_accounts a ON a.id = e.account_id WHERE a.kind = 'PAYMENT_CLEARING'"
    )
    return Decimal(raw)


async def test_ten_identical_callbacks_make_one_payment_and_one_set_of_codes(
    api: Api, server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an EXTERNAL order of 2 codes at 25.00, waiting with its codes reserved
    product = await stocked_product(api, tree["root"].key, 5)
    placed = await place_external(api, tree["A"].key, product, "ext-1", 2)
    order = placed["order"]
    assert order["status"] == "AWAITING_PAYMENT"
    assert order["total"] == "50.00"
    assert order["paymentReference"]
    assert order["expiresAt"]
    assert placed["codes"] == []  # nothing in plaintext before payment
    assert await db.fetchval("SELECT reserved FROM pools") == 2

    # When the gateway sends the same notification 10 times at once
    answers = await asyncio.gather(
        *(callback(server, order["paymentReference"], "gw-tx-1", "50.00") for _ in range(10))
    )

    # Then all are acknowledged, and there is one payment and one set of codes
    assert [a.status_code for a in answers] == [200] * 10
    bodies = [a.json() for a in answers]
    assert {(b["orderStatus"], b["outcome"]) for b in bodies} == {("PAID", "FULFILLED")}
    assert sum(not b["replayed"] for b in bodies) == 1
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    seen = (await api.data(ORDER, {"id": order["id"]}, token=tree["A"].key))["order"]
    assert seen["status"] == "PAID"
    assert [c["status"] for c in seen["codes"]] == ["SOLD", "SOLD"]
    assert {c["id"] for c in seen["codes"]} == {c["id"] for c in order["codes"]}
    assert seen["payments"] == [
        {
            "transactionId": "gw-tx-1",
            "amount": "50.00",
            "source": "CALLBACK",
            "outcome": "FULFILLED",
        }
    ]
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'sold'") == 2
    assert await db.fetchval("SELECT count(*) FROM order_codes") == 2
    assert await db.fetchval("SELECT count(*) FROM code_events WHERE kind = 'SOLD'") == 2
    # And the sale was paid from clearing, once: A's wallet is untouched, the ledger balances
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'SALE'") == 1
    assert await clearing(db) == Decimal("50.00")
    assert await wallet(db, tree["A"]) == Decimal(0)
    assert await ledger_total(db) == 0
    assert await db.fetchrow("SELECT available, reserved, sold FROM pools") == (3, 0, 2)

    # And the buyer now gets its codes in plaintext
    revealed = await api.data(
        "mutation($id: ID!) { revealCodes(input: {orderId: $id}) { codes { code } } }",
        {"id": order["id"]},
        token=tree["A"].key,
    )
    assert len(revealed["revealCodes"]["codes"]) == 2


async def test_refused_callbacks_change_nothing(
    api: Api, server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order waiting for 25.00
    product = await stocked_product(api, tree["root"].key, 2)
    order = (await place_external(api, tree["A"].key, product, "ext-1"))["order"]
    reference = order["paymentReference"]
    before = await state(db)

    # When callbacks come with a wrong or no signature, an unknown reference, a wrong amount
    wrong = await callback(server, reference, "tx", "25.00", signature="00" * 32)
    missing = await callback(server, reference, "tx", "25.00", signed=False)
    unknown = await callback(server, "QY-NOT-A-REFERENCE", "tx", "25.00")
    short = await callback(server, reference, "tx", "24.99")
    failed = await callback(server, reference, "tx", "25.00", status="FAILED")

    # Then they are refused (a failed payment is acknowledged) and nothing changed
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"error": "The signature is missing or wrong."},
    )
    assert missing.status_code == 401
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "No order has this payment reference."},
    )
    assert (short.status_code, short.json()) == (
        400,
        {"error": "The amount must be the order's total, 25.00."},
    )
    assert (failed.status_code, failed.json()["status"]) == (200, "ignored")
    assert await state(db) == before


async def test_hostile_callbacks_get_a_client_error_and_change_nothing(
    api: Api, server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order waiting for 25.00
    product = await stocked_product(api, tree["root"].key, 2)
    order = (await place_external(api, tree["A"].key, product, "ext-1"))["order"]
    reference = order["paymentReference"]
    before = await state(db)
    secret = secret_of(server)

    async def post(body: bytes, signature: bytes) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(
                server.url + "/payments/callback",
                content=body,
                headers={"Content-Type": "application/json", "X-Signature": signature},
            )

    # When signed callbacks carry a NUL in their texts, or JSON nested far too deep, and an
    # unsigned one a signature that is not ASCII
    nul_reference = await callback(server, reference + "\x00", "tx-1", "25.00")
    nul_transaction = await callback(server, reference, "tx\x00-1", "25.00")
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = await post(deep, sign(secret, deep).encode())
    not_ascii = await post(b"{}", "zz\u00e9".encode())

    # Then each gets its client error, and nothing changed
    assert (nul_reference.status_code, nul_reference.json()) == (
        400,
        {"error": "`reference` must not contain NUL characters."},
    )
    assert (nul_transaction.status_code, nul_transaction.json()) == (
        400,
        {"error": "`transactionId` must not contain NUL characters."},
    )
    assert (nested.status_code, nested.json()) == (400, {"error": "The body is not JSON."})
    assert (not_ascii.status_code, not_ascii.json()) == (
        401,
        {"error": "The signature is missing or wrong."},
    )
    assert await state(db) == before


async def test_a_subscriber_sees_its_order_go_from_awaiting_payment_to_paid(
    api: Api, server: LiveServer, tree: dict[str, Node]
) -> None:
    # Given agent A watching its orders
    product = await stocked_product(api, tree["root"].key, 2)
    ws = await connect(server.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": tree["A"].key}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    document = "subscription { orderUpdated { id status } }"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}}))
    await asyncio.sleep(0.2)

    async def next_order() -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["type"] == "next", message
        seen: dict[str, Any] = message["payload"]["data"]["orderUpdated"]
        return seen

    # When A places an EXTERNAL order and the gateway reports its payment
    order = (await place_external(api, tree["A"].key, product, "ext-1"))["order"]
    first = await next_order()
    paid = await callback(server, order["paymentReference"], "gw-1", "25.00")
    assert paid.status_code == 200
    second = await next_order()

    # Then A saw it waiting, then paid
    assert first == {"id": order["id"], "status": "AWAITING_PAYMENT"}
    assert second == {"id": order["id"], "status": "PAID"}
    await ws.close()


async def test_the_platform_confirms_a_payment_by_hand_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a waiting order
    product = await stocked_product(api, tree["root"].key, 2)
    order = (await place_external(api, tree["A"].key, product, "ext-1"))["order"]

    # When A tries to confirm it, then the platform does, twice
    refused = await api.data(
        CONFIRM, {"id": order["id"], "reference": "bank-77"}, token=tree["A"].key
    )
    first = await api.data(
        CONFIRM, {"id": order["id"], "reference": "bank-77"}, token=tree["root"].key
    )
    again = await api.data(
        CONFIRM, {"id": order["id"], "reference": "bank-77"}, token=tree["root"].key
    )

    # Then A may not, the platform's confirmation pays it, and the repeat changes nothing
    assert refused["confirmPayment"] == {
        "order": None,
        "payment": None,
        "userErrors": [
            {
                "field": None,
                "code": "FORBIDDEN",
                "message": "Only the platform's owners and finance staff confirm payments.",
            }
        ],
    }
    expected = {
        "order": {"id": order["id"], "status": "PAID"},
        "payment": {
            "transactionId": "manual:bank-77",
            "amount": "25.00",
            "source": "MANUAL",
            "outcome": "FULFILLED",
        },
        "userErrors": [],
    }
    assert first["confirmPayment"] == expected
    assert again["confirmPayment"] == expected
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'sold'") == 1


async def test_an_order_paid_from_the_wallet_takes_no_confirmation(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a BALANCE order of A's, paid when it was placed
    product = await stocked_product(api, tree["root"].key, 2)
    await funded(api, tree["root"].key, tree["A"].id, "100.00", "bank-1")
    paid = (await api.data(PLACE, order_input(product, "bal-1"), token=tree["A"].key))[
        "placeOrder"
    ]["order"]
    before = await state(db)
    balance = await wallet(db, tree["A"])

    # When the platform confirms a payment for it, ten times at once
    answers = await asyncio.gather(
        *(
            api.data(CONFIRM, {"id": paid["id"], "reference": f"bank-{n}"}, token=tree["root"].key)
            for n in range(10)
        )
    )

    # Then each is refused, and A's wallet is not credited the order's total again
    for confirmed in answers:
        assert confirmed["confirmPayment"] == {
            "order": None,
            "payment": None,
            "userErrors": [
                {
                    "field": ["orderId"],
                    "code": "ORDER_STATE",
                    "message": "Only orders paid through the payment gateway (EXTERNAL) take a"
                    " payment.",
                }
            ],
        }
    assert await wallet(db, tree["A"]) == balance
    assert await state(db) == before


async def test_cancel_gives_codes_back_and_a_later_payment_goes_to_the_wallet(
    api: Api, server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a waiting order of A1's, and a paid BALANCE order of A's
    product = await stocked_product(api, tree["root"].key, 5)
    order = (await place_external(api, tree["A1"].key, product, "ext-1", 2))["order"]
    await funded(api, tree["root"].key, tree["A"].id, "100.00", "bank-1")
    paid = (await api.data(PLACE, order_input(product, "bal-1"), token=tree["A"].key))[
        "placeOrder"
    ]["order"]
    before = await state(db)

    # When a sibling and a read-only caller try to cancel, and a paid order is cancelled
    sibling = await api.data(CANCEL, {"id": order["id"]}, token=tree["B"].key)
    not_waiting = await api.data(CANCEL, {"id": paid["id"]}, token=tree["A"].key)

    # Then they are refused and nothing changed
    assert sibling["cancelOrder"] == {
        "order": None,
        "userErrors": [{"field": ["orderId"], "code": "NOT_FOUND", "message": "No such order."}],
    }
    assert not_waiting["cancelOrder"] == {
        "order": None,
        "userErrors": [
            {
                "field": None,
                "code": "ORDER_STATE",
                "message": "Only an order awaiting payment can be cancelled.",
            }
        ],
    }
    assert await state(db) == before

    # When A, the buyer's parent, cancels it, twice
    cancelled = await api.data(
        CANCEL, {"id": order["id"], "reason": "buyer left"}, token=tree["A"].key
    )
    again = await api.data(CANCEL, {"id": order["id"]}, token=tree["A1"].key)

    # Then it is CANCELLED, its codes are free again, and the repeat is the same answer
    assert cancelled["cancelOrder"] == {
        "order": {
            "id": order["id"],
            "status": "CANCELLED",
            "statusReason": "buyer left",
            "codes": [],
        },
        "userErrors": [],
    }
    assert again == cancelled
    assert await db.fetchrow("SELECT available, reserved, sold FROM pools") == (4, 0, 1)

    # And a payment arriving for it after all is not lost: it is credited to A1's wallet
    late = await callback(server, order["paymentReference"], "gw-late", "50.00")
    assert (late.json()["orderStatus"], late.json()["outcome"]) == ("CANCELLED", "CREDITED")
    assert await wallet(db, tree["A1"]) == Decimal("50.00")
    assert await ledger_total(db) == 0


async def test_refund_restores_the_wallet_to_the_cent_and_voids_the_codes(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A1 bought 3 codes from its balance (A sells at base + 12.5%: 28.13 each)
    product = await stocked_product(api, tree["root"].key, 5)
    await api.data(
        'mutation { setChannelDefaultMarkup(input: {markupPercent: "12.5"}) { channel { id } } }',
        token=tree["A"].key,
    )
    await funded(api, tree["root"].key, tree["A"].id, "200.00", "bank-1")
    await funded(api, tree["A"].key, tree["A1"].id, "100.01", "a-1")
    placed = (await api.data(PLACE, order_input(product, "k", 3), token=tree["A1"].key))[
        "placeOrder"
    ]
    order = placed["order"]
    assert order["total"] == "84.39"
    assert await wallet(db, tree["A1"]) == Decimal("15.62")
    code_ids = [c["id"] for c in order["codes"]]
    before = await state(db)

    # When the buyer itself, and then someone naming only some codes, try to refund
    own = await api.data(REFUND, {"id": order["id"]}, token=tree["A1"].key)
    partial = await api.data(
        REFUND, {"id": order["id"], "codes": code_ids[:1]}, token=tree["A"].key
    )

    # Then both are refused and nothing changed
    assert [e["code"] for e in own["refundOrder"]["userErrors"]] == ["FORBIDDEN"]
    assert partial["refundOrder"]["userErrors"] == [
        {
            "field": ["codeIds"],
            "code": "INVALID_INPUT",
            "message": "A refund takes back all of the order's codes: give all of them, or none.",
        }
    ]
    assert await state(db) == before

    # When A refunds it, and the platform repeats the refund
    refunded = await api.data(
        REFUND, {"id": order["id"], "codes": code_ids, "reason": "faulty"}, token=tree["A"].key
    )
    again = await api.data(REFUND, {"id": order["id"]}, token=tree["root"].key)

    # Then the order is REFUNDED with its codes voided, once
    assert refunded["refundOrder"]["userErrors"] == []
    assert refunded["refundOrder"]["order"]["status"] == "REFUNDED"
    assert refunded["refundOrder"]["order"]["statusReason"] == "faulty"
    assert [c["status"] for c in refunded["refundOrder"]["order"]["codes"]] == ["VOIDED"] * 3
    assert again["refundOrder"] == refunded["refundOrder"]
    assert await db.fetchval("SELECT count(*) FROM code_events WHERE kind = 'VOIDED'") == 3
    assert await db.fetchrow("SELECT available, sold, voided FROM pools") == (2, 0, 3)
    # And the wallet is restored to the cent, every margin reversed, the ledger at zero
    assert await wallet(db, tree["A1"]) == Decimal("100.01")
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'REFUND'") == 1
    earnings = await db.fetchval(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e"
        " JOIN ledger_accounts a ON a.id = e.account_id"
        " WHERE a.kind NOT IN ('CHANNEL_WALLET', 'PAYMENT_CLEARING')"
    )
    assert earnings == 0
    trial = await api.data("{ trialBalance { total } }", token=tree["root"].key)
    assert trial["trialBalance"]["total"] == "0.00"


async def test_only_paid_orders_are_refunded(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    product = await stocked_product(api, tree["root"].key, 2)
    order = (await place_external(api, tree["A1"].key, product, "ext-1"))["order"]
    before = await state(db)

    refused = await api.data(REFUND, {"id": order["id"]}, token=tree["A"].key)

    assert refused["refundOrder"] == {
        "order": None,
        "userErrors": [
            {"field": None, "code": "ORDER_STATE", "message": "Only a paid order can be refunded."}
        ],
    }
    assert await state(db) == before


async def test_an_external_order_retried_with_its_key_holds_one_reservation(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    product = await stocked_product(api, tree["root"].key, 10)

    answers = await asyncio.gather(
        *(place_external(api, tree["A"].key, product, "same", 2) for _ in range(10))
    )

    assert len({repr(a) for a in answers}) == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    # Losers gave their reservations back at once, not at expiry
    assert await db.fetchrow("SELECT available, reserved FROM pools") == (8, 2)
