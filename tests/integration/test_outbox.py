"""The outbox worker in the running app, against real local peers: a uvicorn HTTP receiver
on 127.0.0.1 (webhooks, robots, an SMS provider) and an aiosmtpd SMTP server.

Deliveries are queued here with ``persistence.deliveries.enqueue`` in a transaction of
their own, as the transaction that pays an order does, for orders paid through placeOrder.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from persistence import deliveries
from persistence.deliveries import Requested
from schema import ids
from settings import Settings
from tests.conftest import Api, LiveServer, Node
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input, stocked_product

DINGTALK_SECRET = "SEC0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"
MAX_ATTEMPTS = 4

DELIVERIES = """
query($id: ID!) {
  order(id: $id) {
    deliveries { method status attempts lastError url target deliveredAt nextAttemptAt }
  }
}
"""

CREATE_ENDPOINT = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    webhookEndpoint { id url kind events active disabledAt disabledReason }
    secret
    userErrors { field code message }
  }
}
"""

ENDPOINTS = "{ webhookEndpoints { id url kind active disabledReason } }"


# --- the peers --------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 204
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


OK = Reply(204)
ROBOT_OK = Reply(200, {"errcode": 0, "errmsg": "ok"})


@dataclass
class Receiver:
    """Records every request; answers each path from its script, then with its last reply."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)

    def answer(self, path: str, *replies: Reply) -> str:
        """Script ``path``'s answers (the last one repeats); returns its URL."""
        self.scripts[path] = list(replies)
        return self.url + path

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: Request) -> Response:
        self.requests.append(
            Received(
                request.url.path,
                dict(request.query_params),
                dict(request.headers),
                await request.body(),
                time.time(),
            )
        )
        script = self.scripts.get(request.url.path) or [Reply(404)]
        reply = script.pop(0) if len(script) > 1 else script[0]
        return reply.response()


def receiver_app(receiver: Receiver) -> Starlette:
    return Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    peer = Receiver()
    sock = free_socket()
    peer.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(receiver_app(peer), log_config=None, lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield peer
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@dataclass
class Smtp:
    mailbox: Mailbox
    port: int


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    mailbox = Mailbox()
    with free_socket() as sock:
        port = sock.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(mailbox, port)
    finally:
        controller.stop()


def outbox_settings(settings: Settings, **more: Any) -> Settings:
    """Quick retries and local peers, as the tests of delivery want them."""
    return settings.model_copy(
        update={
            "allow_private_targets": True,
            "outbox_poll_seconds": 0.05,
            "outbox_retry_base_seconds": 0.05,
            "outbox_retry_cap_seconds": 0.2,
            "outbox_max_attempts": MAX_ATTEMPTS,
            **more,
        }
    )


# A settings param: the server's outbox looks for work once an hour, not every 50 ms, so
# that a test reads queued rows before the outbox takes them.
QUIET_OUTBOX = "quiet-outbox"


@pytest.fixture
def settings(
    settings: Settings, receiver: Receiver, smtp: Smtp, request: pytest.FixtureRequest
) -> Settings:
    quiet = getattr(request, "param", None) == QUIET_OUTBOX
    return outbox_settings(
        settings,
        **({"outbox_poll_seconds": 3600} if quiet else {}),
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_sender="Quanyi <codes@quanyi.example>",
        sms_url=receiver.url + "/sms",
        sms_api_key=SecretStr("sms-key-1"),
        sms_template="{product}: {codes} ({order})",
    )


# --- helpers ----------------------------------------------------------------------------


@dataclass
class Paid:
    id: str
    codes: list[dict[str, Any]]
    buyer: Node


@pytest.fixture
async def product(api: Api, tree: dict[str, Node]) -> str:
    """A product with 20 codes, and money in A's wallet for all of them."""
    stocked = await stocked_product(api, tree["root"].key, 20)
    await funded(api, tree["root"].key, tree["A"].id, "1000.00", "bank-1")
    return stocked


async def paid_order(
    api: Api, tree: dict[str, Node], product: str, key: str = "k", quantity: int = 2
) -> Paid:
    """An order of A's, paid from its balance, with its plaintext codes."""
    buyer = tree["A"]
    placed = (await api.data(PLACE, order_input(product, key, quantity), token=buyer.key))[
        "placeOrder"
    ]
    assert placed["userErrors"] == []
    return Paid(placed["order"]["id"], placed["codes"], buyer)


async def queue(
    server: LiveServer, db: asyncpg.Connection[Any], order: Paid, method: str, target: str | None
) -> None:
    """Queue a delivery as the paying transaction does, and tell the worker."""
    order_id = ids.decode("Order", order.id)
    channel_id = ids.decode("Channel", order.buyer.id)
    assert order_id is not None
    assert channel_id is not None
    async with db.transaction():
        await deliveries.enqueue(db, [Requested(order_id, channel_id, method, target)])
    server.app.state.services.outbox.wake()


async def settled(api: Api, token: str, order_id: str, within: float = 10) -> list[Any]:
    """The order's deliveries once none is waiting any more."""
    deadline = time.monotonic() + within
    while True:
        shown: list[Any] = (await api.data(DELIVERIES, {"id": order_id}, token=token))["order"][
            "deliveries"
        ]
        if all(d["status"] in ("DELIVERED", "DEAD") for d in shown):
            return shown
        assert time.monotonic() < deadline, shown
        await asyncio.sleep(0.05)


async def create_endpoint(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    created = (await api.data(CREATE_ENDPOINT, {"input": fields}, token=token))[
        "createWebhookEndpoint"
    ]
    assert created["userErrors"] == []
    return dict(created)


def summary(shown: list[Any]) -> list[tuple[str, str, int, str | None]]:
    return [(d["method"], d["status"], d["attempts"], d["lastError"]) for d in shown]


async def delivered_events(db: asyncpg.Connection[Any], order: Paid) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT actor, count(*) AS n FROM code_events WHERE order_id = $1"
        " AND kind = 'DELIVERED' GROUP BY actor ORDER BY actor",
        ids.decode("Order", order.id),
    )
    return [(r["actor"], r["n"]) for r in rows]


API_DELIVERED = ("API", "DELIVERED", 1, None)


# --- webhooks ---------------------------------------------------------------------------


async def test_a_receiver_failing_three_times_gets_one_signed_delivery(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given A's GENERIC endpoint, whose receiver answers 503 three times and then 204
    url = receiver.answer("/hook", Reply(503), Reply(503), Reply(503), OK)
    endpoint = await create_endpoint(api, tree["A"].key, url=url)
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    order = await paid_order(api, tree, product)

    # When A's paid order is queued for WEBHOOK delivery
    await queue(server, db, order, "WEBHOOK", None)

    # Then the order shows one delivery, DELIVERED at the fourth attempt, with the last error
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [API_DELIVERED, ("WEBHOOK", "DELIVERED", 4, "HTTP 503")]
    assert shown[1]["deliveredAt"] is not None
    assert shown[1]["nextAttemptAt"] is None

    # And the receiver got four requests with one webhook-id, each correctly signed
    hits = receiver.at("/hook")
    assert len(hits) == 4
    assert len({h.headers["webhook-id"] for h in hits}) == 1
    events = [Webhook(secret).verify(h.body, h.headers) for h in hits]
    # And the one it accepted carries the order's codes
    event = events[-1]
    assert event["type"] == "order.paid"
    assert event["data"]["orderId"] == order.id
    assert event["data"]["channelId"] == tree["A"].id
    assert event["data"]["productName"] == "Video VIP month"
    assert [(c["code"], c["password"]) for c in event["data"]["codes"]] == [
        (c["code"], c["password"]) for c in order.codes
    ]
    # And the codes' DELIVERED events name the webhook (the sale recorded the API answer)
    assert await delivered_events(db, order) == [
        (f"api-key:{_key_number(tree)}", 2),
        ("outbox:WEBHOOK", 2),
    ]

    # And nothing more is sent once the success is recorded
    await asyncio.sleep(0.3)
    assert len(receiver.at("/hook")) == 4


async def test_a_gone_receiver_disables_its_endpoint_and_its_delivery_is_dead(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given A's endpoint whose receiver answers 410 Gone
    await create_endpoint(api, tree["A"].key, url=receiver.answer("/gone", Reply(410)))
    order = await paid_order(api, tree, product)

    # When a paid order is queued for it
    await queue(server, db, order, "WEBHOOK", None)

    # Then the delivery is DEAD after one attempt, and the endpoint is disabled saying why
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [API_DELIVERED, ("WEBHOOK", "DEAD", 1, "HTTP 410 gone")]
    listed = (await api.data(ENDPOINTS, token=tree["A"].key))["webhookEndpoints"]
    assert [(e["active"], e["disabledReason"]) for e in listed] == [
        (False, "The receiver answered HTTP 410 Gone.")
    ]
    assert len(receiver.at("/gone")) == 1
    assert await delivered_events(db, order) == [(f"api-key:{_key_number(tree)}", 2)]

    # And the next order queues nothing for the disabled endpoint
    again = await paid_order(api, tree, product, key="k2")
    await queue(server, db, again, "WEBHOOK", None)
    assert summary(await settled(api, tree["A"].key, again.id)) == [API_DELIVERED]


def _key_number(tree: dict[str, Node]) -> int:
    number = ids.decode("ApiKey", tree["A"].key_id)
    assert number is not None
    return number


async def test_a_busy_receiver_is_asked_again_after_its_retry_after(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given a receiver that answers 503 with Retry-After: 1 once, then 204
    url = receiver.answer("/busy", Reply(503, headers={"Retry-After": "1"}), OK)
    await create_endpoint(api, tree["A"].key, url=url)
    order = await paid_order(api, tree, product)

    # When a delivery to it is queued
    await queue(server, db, order, "WEBHOOK", None)

    # Then the second attempt came no sooner than asked, though backoff alone is ~0.05 s
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [API_DELIVERED, ("WEBHOOK", "DELIVERED", 2, "HTTP 503")]
    first, second = receiver.at("/busy")
    assert second.at - first.at >= 0.95


async def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given a receiver that always answers 500
    await create_endpoint(api, tree["A"].key, url=receiver.answer("/down", Reply(500)))
    order = await paid_order(api, tree, product)

    # When a delivery to it is queued
    await queue(server, db, order, "WEBHOOK", None)

    # Then it is DEAD after the last attempt allowed, saying so
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [
        API_DELIVERED,
        ("WEBHOOK", "DEAD", MAX_ATTEMPTS, f"HTTP 500 (gave up after {MAX_ATTEMPTS} attempts)"),
    ]
    assert len(receiver.at("/down")) == MAX_ATTEMPTS
    assert await delivered_events(db, order) == [(f"api-key:{_key_number(tree)}", 2)]


async def test_wecom_and_dingtalk_robots_get_their_own_formats(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given a WeCom robot and a signing DingTalk robot of A's
    wecom = receiver.answer("/wecom", ROBOT_OK) + "?key=robot-key-1"
    dingtalk = receiver.answer("/dingtalk", ROBOT_OK) + "?access_token=ding-token-1"
    await create_endpoint(api, tree["A"].key, url=wecom, kind="WECOM")
    made = await create_endpoint(
        api, tree["A"].key, url=dingtalk, kind="DINGTALK", secret=DINGTALK_SECRET
    )
    assert made["secret"] is None
    order = await paid_order(api, tree, product)

    # When a paid order is queued for WEBHOOK delivery
    before = time.time()
    await queue(server, db, order, "WEBHOOK", None)

    # Then each robot got one message, and both deliveries are DELIVERED
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [API_DELIVERED] + [("WEBHOOK", "DELIVERED", 1, None)] * 2
    (wecom_hit,) = receiver.at("/wecom")
    (ding_hit,) = receiver.at("/dingtalk")

    # And WeCom's is markdown with the order and every code and password, its key kept
    assert wecom_hit.query == {"key": "robot-key-1"}
    body = wecom_hit.json()
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("**订单已支付 / Order paid**")
    assert order.id in content
    for code in order.codes:
        assert f"`{code['code']}`" in content
        assert f"`{code['password']}`" in content

    # And DingTalk's URL carries a fresh timestamp and the sign DingTalk checks
    timestamp = ding_hit.query["timestamp"]
    assert before * 1000 - 1000 <= int(timestamp) <= time.time() * 1000
    digest = hmac.new(
        DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256
    ).digest()
    assert ding_hit.query == {
        "access_token": "ding-token-1",
        "timestamp": timestamp,
        "sign": base64.b64encode(digest).decode(),
    }
    body = ding_hit.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "订单已支付 / Order paid"
    for code in order.codes:
        assert code["code"] in body["markdown"]["text"]

    # And the endpoints are listed with the robots' keys masked
    listed = (await api.data(ENDPOINTS, token=tree["A"].key))["webhookEndpoints"]
    assert [(e["kind"], e["url"], e["active"]) for e in listed] == [
        ("WECOM", f"{receiver.url}/wecom?key=***", True),
        ("DINGTALK", f"{receiver.url}/dingtalk?access_token=***", True),
    ]


# --- e-mail and SMS ---------------------------------------------------------------------


async def test_the_buyer_gets_the_codes_by_email(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    smtp: Smtp,
    product: str,
) -> None:
    # Given a paid order
    order = await paid_order(api, tree, product)

    # When it is queued for e-mail to the buyer
    await queue(server, db, order, "EMAIL", "buyer@example.com")

    # Then the order shows it DELIVERED to the masked address
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [API_DELIVERED, ("EMAIL", "DELIVERED", 1, None)]
    assert shown[1]["target"] == "b***@example.com"

    # And the SMTP server received one message to the buyer with every code and password
    ((sender, recipients, content),) = smtp.mailbox.messages
    assert sender == "codes@quanyi.example"
    assert recipients == ["buyer@example.com"]
    message = message_from_bytes(content, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "您的卡密 / Your codes — Video VIP month"
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    text = plain.get_content()
    assert order.id in text
    for code in order.codes:
        assert f"Code: {code['code']}" in text
        assert f"Password: {code['password']}" in text
    assert await delivered_events(db, order) == [
        (f"api-key:{_key_number(tree)}", 2),
        ("outbox:EMAIL", 2),
    ]


async def test_the_buyer_gets_the_codes_by_sms(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given an SMS provider that accepts the request, and a paid order
    receiver.answer("/sms", Reply(202, {"id": "sms-1"}))
    order = await paid_order(api, tree, product)

    # When it is queued for SMS to the buyer's phone
    await queue(server, db, order, "SMS", "+86 138-0013-8000")

    # Then the order shows it DELIVERED to the masked number
    shown = await settled(api, tree["A"].key, order.id)
    assert summary(shown) == [API_DELIVERED, ("SMS", "DELIVERED", 1, None)]
    assert shown[1]["target"] == "***8000"

    # And the provider got the template rendered with the codes, with its key
    (hit,) = receiver.at("/sms")
    assert hit.headers["authorization"] == "Bearer sms-key-1"
    codes = "; ".join(f"{c['code']} / {c['password']}" for c in order.codes)
    assert hit.json() == {"to": "+8613800138000", "text": f"Video VIP month: {codes} ({order.id})"}


# --- the queue itself -------------------------------------------------------------------


async def test_a_claim_of_a_stopped_worker_is_taken_up_and_a_live_ones_is_left_alone(
    server: LiveServer,
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given a delivery claimed for an hour by worker 4242, whose lock the test holds
    await create_endpoint(api, tree["A"].key, url=receiver.answer("/hook", OK))
    order = await paid_order(api, tree, product)
    await db.execute("SELECT pg_advisory_lock($1::integer, 4242)", deliveries.WORKER_LOCK_CLASS)
    async with db.transaction():
        await queue(server, db, order, "WEBHOOK", None)
        await db.execute(
            "UPDATE deliveries SET status = 'SENDING', attempts = 1, leased_by = 4242,"
            " leased_until = now() + interval '1 hour'"
        )

    # When the worker has looked a few times
    await asyncio.sleep(0.3)

    # Then the live worker's claim is left alone
    assert await db.fetchval("SELECT status FROM deliveries") == "SENDING"
    assert receiver.at("/hook") == []

    # And when that worker stops (its lock goes), its claim is sent at once, counted
    await db.execute("SELECT pg_advisory_unlock($1::integer, 4242)", deliveries.WORKER_LOCK_CLASS)
    shown = await settled(api, tree["A"].key, order.id, within=3)
    assert summary(shown) == [
        API_DELIVERED,
        (
            "WEBHOOK",
            "DELIVERED",
            2,
            "attempt interrupted: its worker stopped before recording the outcome",
        ),
    ]
    assert len(receiver.at("/hook")) == 1


@pytest.mark.parametrize("settings", [QUIET_OUTBOX], indirect=True)
async def test_enqueue_writes_each_delivery_once_and_a_webhook_per_subscribed_endpoint(
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
    product: str,
) -> None:
    # Given two active endpoints of A's, one disabled, and one of B's
    first = await create_endpoint(api, tree["A"].key, url=receiver.answer("/a1", OK))
    second = await create_endpoint(api, tree["A"].key, url=receiver.answer("/a2", OK))
    off = await create_endpoint(api, tree["A"].key, url=receiver.answer("/off", OK))
    await api.data(
        "mutation($i: DisableWebhookEndpointInput!) { disableWebhookEndpoint(input: $i) {"
        " userErrors { code } } }",
        {"i": {"webhookEndpointId": off["webhookEndpoint"]["id"]}},
        token=tree["A"].key,
    )
    await create_endpoint(api, tree["B"].key, url=receiver.answer("/b", OK))
    one = await paid_order(api, tree, product, key="one")
    two = await paid_order(api, tree, product, key="two")
    a = ids.decode("Channel", tree["A"].id)
    assert a is not None
    o1, o2 = ids.decode("Order", one.id), ids.decode("Order", two.id)
    assert o1 is not None
    assert o2 is not None
    requested = [
        Requested(o1, a, "WEBHOOK", None),
        Requested(o1, a, "EMAIL", "x@example.com"),
        Requested(o1, a, "EMAIL", "x@example.com"),
        Requested(o1, a, "LINK", None),
        Requested(o2, a, "SMS", "13800138000"),
    ]

    # When two orders' deliveries are queued in one call, and the same call is repeated
    for _ in range(2):
        async with db.transaction():
            await deliveries.enqueue(db, requested)

    # Then each is written once, the webhook once per active endpoint of A's, the link
    # delivered at once
    rows = await db.fetch(
        "SELECT order_id, method, target, endpoint_id, status FROM deliveries"
        " ORDER BY order_id, method, endpoint_id"
    )
    endpoints = [ids.decode("WebhookEndpoint", e["webhookEndpoint"]["id"]) for e in (first, second)]
    assert [tuple(r) for r in rows] == [
        (o1, "EMAIL", "x@example.com", None, "PENDING"),
        (o1, "LINK", None, None, "DELIVERED"),
        (o1, "WEBHOOK", None, endpoints[0], "PENDING"),
        (o1, "WEBHOOK", None, endpoints[1], "PENDING"),
        (o2, "SMS", "13800138000", None, "PENDING"),
    ]
