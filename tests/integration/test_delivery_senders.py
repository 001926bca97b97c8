"""Delivery senders against real local peers: an HTTP receiver served by uvicorn on
127.0.0.1 (webhooks, robots, SMS provider) and an aiosmtpd SMTP server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations import webhooks
from integrations.http_outcome import SUCCESS, Outcome
from integrations.mail import MailSettings, build_code_message, send_mail
from integrations.sms import SmsSettings, render_sms, send_sms

DINGTALK_SECRET = "SEC5d3c9b0a7f1e2d4c6b8a0f9e7d5c3b1a2f4e6d8c0b9a7f5e3d1c2b4a6f8e0d9c7"
CODES: list[dict[str, Any]] = [
    {"id": "c1", "code": "GIFT-AAAA-1111", "password": "9876", "expiresAt": None},
    {"id": "c2", "code": "GIFT-BBBB-2222", "password": None, "expiresAt": None},
]


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request and answers by path, as the real peers would."""

    url: str = ""
    generic_secret: str = field(default_factory=webhooks.new_secret)
    requests: list[Received] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        received = Received(
            request.url.path,
            dict(request.query_params),
            dict(request.headers),
            await request.body(),
        )
        self.requests.append(received)
        name = request.path_params["name"]
        if name == "generic":
            try:
                Webhook(self.generic_secret).verify(received.body, received.headers)
            except WebhookVerificationError:
                return Response(status_code=401)
            return Response(status_code=204)
        if name == "busy":
            return Response("GIFT-AAAA-1111", status_code=503, headers={"Retry-After": "7"})
        if name == "gone":
            return Response(status_code=410)
        if name == "moved":
            return Response(status_code=302, headers={"Location": f"{self.url}/generic"})
        if name == "wecom":
            return JSONResponse({"errcode": 0, "errmsg": "ok"})
        if name == "wecom-busy":
            return JSONResponse({"errcode": 45009, "errmsg": "api freq out of limit"})
        if name == "dingtalk":
            return JSONResponse(_dingtalk_check(received.query))
        if name == "sms":
            return JSONResponse({"id": "sms-1"}, status_code=202)
        return Response(status_code=404)


def _dingtalk_check(query: dict[str, str]) -> dict[str, Any]:
    # The receiver recomputes DingTalk's documented signature on its own.
    timestamp = query.get("timestamp", "")
    digest = hmac.new(
        DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256
    ).digest()
    if query.get("sign") == base64.b64encode(digest).decode():
        return {"errcode": 0, "errmsg": "ok"}
    return {"errcode": 310000, "errmsg": "sign not match"}


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _free_port() -> int:
    with _free_socket() as sock:
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    peer = Receiver()
    app = Starlette(routes=[Route("/{name}", peer.handle, methods=["POST"])])
    sock = _free_socket()
    peer.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
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


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


def paid_event() -> dict[str, Any]:
    return webhooks.order_paid_event("o1", "ch1", "p1", "Q币 10元", CODES, datetime.now(UTC))


async def deliver(
    client: httpx.AsyncClient,
    kind: webhooks.WebhookKind,
    url: str,
    secret: str | None = None,
    *,
    msg_id: str = "msg_1",
    event: dict[str, Any] | None = None,
    allow_private: bool = True,
    now: datetime | None = None,
) -> Outcome:
    return await webhooks.send(
        client,
        kind,
        url,
        secret,
        msg_id,
        event or paid_event(),
        allow_private=allow_private,
        now=now or datetime.now(UTC),
    )


# --- webhooks --------------------------------------------------------------------------------


async def test_generic_delivery_is_verified_by_the_receiver(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    # Given an event and the endpoint's whsec_ secret
    event, url, secret = paid_event(), f"{receiver.url}/generic", receiver.generic_secret

    # When it is sent twice under one outbox id, as a retry would, half a minute apart
    first = await deliver(client, "GENERIC", url, secret, msg_id="msg_7", event=event)
    later = datetime.now(UTC) + timedelta(seconds=30)
    second = await deliver(client, "GENERIC", url, secret, msg_id="msg_7", event=event, now=later)

    # Then the receiver verified both with standardwebhooks, and both carry the same id
    assert first == second == SUCCESS
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_7", "msg_7"]
    assert receiver.requests[0].headers["content-type"] == "application/json"
    assert receiver.requests[0].json() == event
    assert receiver.requests[1].headers["webhook-timestamp"] == str(int(later.timestamp()))


async def test_generic_delivery_signed_with_another_secret_is_refused_without_retry(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    outcome = await deliver(client, "GENERIC", f"{receiver.url}/generic", webhooks.new_secret())

    assert outcome == Outcome(ok=False, retry=False, gone=False, error="HTTP 401", retry_after=None)


async def test_generic_delivery_without_a_secret_is_not_sent(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    outcome = await deliver(client, "GENERIC", f"{receiver.url}/generic", None)

    assert outcome == Outcome(False, False, False, "GENERIC endpoint has no signing secret", None)
    assert receiver.requests == []


async def test_a_busy_receiver_is_retried_after_the_time_it_asks(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    outcome = await deliver(client, "GENERIC", f"{receiver.url}/busy", receiver.generic_secret)

    # The reply body echoed a code; the error does not carry it
    assert outcome == Outcome(ok=False, retry=True, gone=False, error="HTTP 503", retry_after=7.0)


async def test_a_gone_receiver_disables_the_endpoint(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    outcome = await deliver(client, "GENERIC", f"{receiver.url}/gone", receiver.generic_secret)

    assert outcome == Outcome(
        ok=False, retry=False, gone=True, error="HTTP 410 gone", retry_after=None
    )


async def test_a_redirect_is_not_followed(receiver: Receiver, client: httpx.AsyncClient) -> None:
    outcome = await deliver(client, "GENERIC", f"{receiver.url}/moved", receiver.generic_secret)

    assert outcome == Outcome(False, False, False, "HTTP 302: redirect not followed", None)
    assert [r.path for r in receiver.requests] == ["/moved"]


async def test_wecom_robot_gets_markdown_and_its_errcode_decides(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    # Given WeCom robot URLs with their key in the query
    event = paid_event()

    # When the event goes to a robot that accepts it and to one that is rate limited
    ok = await deliver(client, "WECOM", f"{receiver.url}/wecom?key=rk", event=event)
    limited = await deliver(client, "WECOM", f"{receiver.url}/wecom-busy?key=rk", event=event)

    # Then the robot got the markdown message, and the rate limit is worth a retry
    assert ok == SUCCESS
    assert limited == Outcome(False, True, False, "errcode 45009", None)
    assert receiver.requests[0].query == {"key": "rk"}
    assert receiver.requests[0].json() == webhooks.wecom_payload(event)
    assert "`GIFT-AAAA-1111`" in receiver.requests[0].json()["markdown"]["content"]


async def test_dingtalk_robot_gets_a_signed_url_and_markdown(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    event, now, url = paid_event(), datetime.now(UTC), f"{receiver.url}/dingtalk?access_token=t"

    # When sent with the right secret and then with a wrong one
    ok = await deliver(client, "DINGTALK", url, DINGTALK_SECRET, event=event, now=now)
    wrong = await deliver(client, "DINGTALK", url, "SECwrong", event=event, now=now)

    # Then the receiver accepted the first signature and refused the second, for good
    assert ok == SUCCESS
    assert wrong == Outcome(False, False, False, "errcode 310000", None)
    first = receiver.requests[0]
    assert first.query["access_token"] == "t"
    assert first.query["timestamp"] == str(int(now.timestamp() * 1000))
    assert first.json() == webhooks.dingtalk_payload(event)


async def test_private_targets_are_refused_unless_allowed(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    outcome = await deliver(
        client, "GENERIC", f"{receiver.url}/generic", receiver.generic_secret, allow_private=False
    )

    assert outcome == Outcome(
        False, False, False, "target refused: 127.0.0.1 is a loopback address", None
    )
    assert receiver.requests == []


async def test_a_closed_port_is_a_network_error_worth_retrying(
    client: httpx.AsyncClient,
) -> None:
    outcome = await deliver(client, "WECOM", f"http://127.0.0.1:{_free_port()}/wecom?key=k")

    assert outcome == Outcome(False, True, False, "network error: ConnectError", None)


# --- SMS -------------------------------------------------------------------------------------


async def test_sms_provider_gets_the_rendered_text(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    # Given a provider behind a bearer key and a template
    settings = SmsSettings(
        f"{receiver.url}/sms", "sms-key", "【权益】{product}：{codes} 订单{order}", "Quanyi", 5.0
    )
    text = render_sms(settings.template, "Q币 10元", CODES, "o1")

    # When a text goes to a CN mobile written with spaces
    outcome = await send_sms(client, settings, "138 1234 5678", text, allow_private=True)

    # Then the provider got the JSON with the normalised number and the whole text
    assert outcome == SUCCESS
    (request,) = receiver.requests
    assert request.headers["authorization"] == "Bearer sms-key"
    assert request.json() == {
        "to": "13812345678",
        "text": "【权益】Q币 10元：GIFT-AAAA-1111 / 9876; GIFT-BBBB-2222 订单o1",
        "sender": "Quanyi",
    }


async def test_sms_refuses_a_bad_number_and_a_private_provider_without_calling(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    settings = SmsSettings(f"{receiver.url}/sms", None, "{codes}", None, 5.0)

    bad_number = await send_sms(client, settings, "12345", "x", allow_private=True)
    private = await send_sms(client, settings, "+8613812345678", "x", allow_private=False)
    ftp = SmsSettings(settings.url.replace("http", "ftp"), None, "{codes}", None, 5.0)
    not_http = await send_sms(client, ftp, "+8613812345678", "x", allow_private=True)

    assert bad_number == Outcome(False, False, False, "invalid phone number", None)
    assert private == Outcome(
        False, False, False, "target refused: 127.0.0.1 is a loopback address", None
    )
    assert not_http == Outcome(
        False, False, False, "target refused: scheme 'ftp' is not http or https", None
    )
    assert receiver.requests == []


async def test_sms_without_key_or_sender_sends_neither(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    settings = SmsSettings(f"{receiver.url}/sms", None, "{codes}", None, 5.0)

    assert await send_sms(client, settings, "+14155550100", "hi", allow_private=True) == SUCCESS

    (request,) = receiver.requests
    assert "authorization" not in request.headers
    assert request.json() == {"to": "+14155550100", "text": "hi"}


# --- e-mail ----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and can refuse recipients."""

    rcpt_reply: str | None = None
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@dataclass
class SmtpPeer:
    mailbox: Mailbox
    settings: MailSettings


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpPeer(
            mailbox,
            MailSettings("127.0.0.1", port, False, False, None, None, "noreply@quanyi.example", 5),
        )
    finally:
        controller.stop()


def code_message() -> EmailMessage:
    return build_code_message(
        "buyer@example.com", "o1", "Q币 10元", CODES, "Quanyi <noreply@quanyi.example>"
    )


async def test_the_code_email_arrives_with_the_codes(smtp: SmtpPeer) -> None:
    outcome = await send_mail(smtp.settings, code_message())

    assert outcome == SUCCESS
    ((sender, recipients, content),) = smtp.mailbox.messages
    assert sender == "noreply@quanyi.example"
    assert recipients == ["buyer@example.com"]
    received = message_from_bytes(content, policy=email_policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Subject"] == "您的卡密 / Your codes — Q币 10元"
    # SMTP carries CRLF line ends
    plain = _part(received, "plain").replace("\r\n", "\n")
    assert "1. 卡号：GIFT-AAAA-1111\n   密码：9876" in plain
    assert "2. Code: GIFT-BBBB-2222" in plain
    assert "GIFT-AAAA-1111" in _part(received, "html")


REFUSED = "recipient refused"


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    content: str = part.get_content()
    return content


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("451 4.3.0 Try again later", Outcome(False, True, False, f"SMTP 451: {REFUSED}", None)),
        ("550 5.1.1 No such user", Outcome(False, False, False, f"SMTP 550: {REFUSED}", None)),
    ],
)
async def test_smtp_refusals_retry_when_temporary(
    smtp: SmtpPeer, reply: str, expected: Outcome
) -> None:
    smtp.mailbox.rcpt_reply = reply

    assert await send_mail(smtp.settings, code_message()) == expected
    assert smtp.mailbox.messages == []


async def test_an_unreachable_smtp_server_is_worth_retrying() -> None:
    settings = MailSettings("127.0.0.1", _free_port(), False, False, None, None, "n@q.example", 2)

    outcome = await send_mail(settings, code_message())

    assert outcome == Outcome(False, True, False, "SMTP connection error: SMTPConnectError", None)
