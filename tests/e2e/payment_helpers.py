"""Placing EXTERNAL orders and sending the gateway's signed callbacks over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx

from domain.payments import sign
from server import Services
from tests.conftest import Api, LiveServer

PLACE_EXTERNAL = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { id status total paymentReference expiresAt codes { id status } }
    codes { id code }
    userErrors { field code message }
  }
}
"""

ORDER = """
query($id: ID!) {
  order(id: $id) {
    id status statusReason total paymentReference codes { id status }
    payments { transactionId amount source outcome }
  }
}
"""


async def place_external(
    api: Api, token: str, product: str, key: str, quantity: int = 1
) -> dict[str, Any]:
    placed = await api.data(
        PLACE_EXTERNAL,
        {
            "input": {
                "idempotencyKey": key,
                "productId": product,
                "quantity": quantity,
                "payment": "EXTERNAL",
            }
        },
        token=token,
    )
    payload: dict[str, Any] = placed["placeOrder"]
    assert payload["userErrors"] == [], payload
    return payload


def secret_of(server: LiveServer) -> bytes:
    services: Services = server.app.state.services
    return services.settings.resolved_payment_secret()


async def callback(
    server: LiveServer,
    reference: str,
    transaction_id: str,
    amount: str,
    *,
    status: str = "SUCCESS",
    signature: str | None = None,
    signed: bool = True,
) -> httpx.Response:
    body = json.dumps(
        {
            "reference": reference,
            "transactionId": transaction_id,
            "amount": amount,
            "status": status,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Signature"] = signature or sign(secret_of(server), body)
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(server.url + "/payments/callback", content=body, headers=headers)


async def state(db: asyncpg.Connection[Any]) -> list[Any]:
    """What a refused callback must not change."""
    return [
        await db.fetch("SELECT * FROM orders ORDER BY id"),
        await db.fetch("SELECT * FROM order_codes ORDER BY code_id"),
        await db.fetch("SELECT * FROM payments ORDER BY id"),
        await db.fetch("SELECT id, status, reservation_ref FROM codes ORDER BY id"),
        await db.fetch("SELECT * FROM ledger_entries ORDER BY id"),
        await db.fetch("SELECT * FROM code_events ORDER BY id"),
        await db.fetch("SELECT available, reserved, sold, voided FROM pools ORDER BY id"),
    ]


async def ledger_total(db: asyncpg.Connection[Any]) -> Any:
    return await db.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger_entries")
