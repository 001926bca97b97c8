"""Deliveries an order asks for in placeOrder, through real HTTP to real local peers."""

from __future__ import annotations

from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from settings import Settings
from tests.conftest import Api, LiveServer, Node
from tests.e2e.test_orders import PLACE
from tests.integration.test_outbox import (
    API_DELIVERED,
    OK,
    Receiver,
    Smtp,
    create_endpoint,
    outbox_settings,
    paid_order,
    product,
    queue,
    receiver,
    settled,
    smtp,
    summary,
)

__all__ = ["product", "receiver", "smtp"]  # fixtures, imported for this module's tests

UNCONFIGURED = "unconfigured"


@pytest.fixture
def settings(
    settings: Settings, receiver: Receiver, smtp: Smtp, request: pytest.FixtureRequest
) -> Settings:
    """Local peers for every method; none for e-mail and SMS when a test asks so."""
    if getattr(request, "param", None) == UNCONFIGURED:
        return outbox_settings(settings)
    return outbox_settings(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_sender="codes@quanyi.example",
        sms_url=receiver.url + "/sms",
    )


async def test_an_order_goes_out_by_every_method_it_asks_for(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    smtp: Smtp,
    product: str,
) -> None:
    # Given A's GENERIC endpoint and SMS provider, both accepting
    a = tree["A"]
    secret = (await create_endpoint(api, a.key, url=receiver.answer("/hook", OK)))["secret"]
    receiver.answer("/sms", OK)

    # When A orders with the codes in the answer, a link, a webhook, an e-mail and an SMS
    placed = (
        await api.data(
            PLACE,
            {
                "input": {
                    "idempotencyKey": "every-way",
                    "productId": product,
                    "quantity": 2,
                    "buyer": {"email": "buyer@example.com", "phone": "13800138000"},
                    "delivery": [
                        {"method": "API"},
                        {"method": "LINK"},
                        {"method": "WEBHOOK"},
                        {"method": "EMAIL"},
                        {"method": "SMS"},
                    ],
                }
            },
            token=a.key,
        )
    )["placeOrder"]

    # Then the answer has the codes, and every delivery ends DELIVERED at its first attempt
    assert placed["userErrors"] == []
    codes = [c["code"] for c in placed["codes"]]
    assert len(codes) == 2
    shown = await settled(api, a.key, placed["order"]["id"])
    assert summary(shown) == [API_DELIVERED] + [
        (method, "DELIVERED", 1, None) for method in ("LINK", "WEBHOOK", "EMAIL", "SMS")
    ]
    assert [d["target"] for d in shown] == [None, None, None, "b***@example.com", "***8000"]

    # And the link page shows the codes
    page = await api.http.get(server.url + shown[1]["url"])
    assert all(code in page.text for code in codes)
    # And the webhook, the e-mail and the SMS carried them
    (hook,) = receiver.at("/hook")
    event = Webhook(secret).verify(hook.body, hook.headers)
    assert [c["code"] for c in event["data"]["codes"]] == codes
    ((_, recipients, content),) = smtp.mailbox.messages
    assert recipients == ["buyer@example.com"]
    mail = message_from_bytes(content, policy=email_policy.default)
    assert isinstance(mail, EmailMessage)
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    assert all(code in body.get_content() for code in codes)
    (sms,) = receiver.at("/sms")
    assert sms.json()["to"] == "13800138000"
    assert all(code in sms.json()["text"] for code in codes)


async def test_a_webhook_delivery_with_no_endpoint_to_go_to_is_refused(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], product: str
) -> None:
    # Given A with no webhook endpoint for order.paid: none, then one that takes another event
    a = tree["A"]
    order = {
        "idempotencyKey": "hooked",
        "productId": product,
        "quantity": 1,
        "delivery": [{"method": "LINK"}, {"method": "WEBHOOK"}],
    }
    before = await db.fetchval("SELECT count(*) FROM orders")

    for endpoints in ([], ["code.frozen"]):
        if endpoints:
            await create_endpoint(api, a.key, url="https://hooks.example/frozen", events=endpoints)

        # When A orders a webhook delivery
        refused = (await api.data(PLACE, {"input": order}, token=a.key))["placeOrder"]

        # Then the order is refused, saying why, and nothing is placed
        assert refused["userErrors"] == [
            {
                "field": ["delivery.1.method"],
                "code": "INVALID_INPUT",
                "message": "Your channel has no active webhook endpoint for order.paid: create"
                " one (createWebhookEndpoint) or ask for another delivery.",
            }
        ]
        assert await db.fetchval("SELECT count(*) FROM orders") == before

    # And once an endpoint takes order.paid, the same order is placed
    await create_endpoint(api, a.key, url="https://hooks.example/paid")
    placed = (await api.data(PLACE, {"input": order}, token=a.key))["placeOrder"]
    assert placed["userErrors"] == []


@pytest.mark.parametrize("settings", [UNCONFIGURED], indirect=True)
async def test_email_and_sms_without_a_provider_are_dead_saying_what_is_missing(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    product: str,
) -> None:
    # Given a server with neither SMTP nor an SMS provider configured, and a paid order
    order = await paid_order(api, tree, product)

    # When it is queued for e-mail and SMS
    await queue(server, db, order, "EMAIL", "buyer@example.com")
    await queue(server, db, order, "SMS", "13800138000")

    # Then both are DEAD at their first attempt, naming the setting to make
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [
        API_DELIVERED,
        ("EMAIL", "DEAD", 1, "E-mail is not configured on this server (QUANYI_SMTP_HOST)."),
        ("SMS", "DEAD", 1, "SMS is not configured on this server (QUANYI_SMS_URL)."),
    ]
