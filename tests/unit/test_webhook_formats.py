"""Delivery formats without I/O: webhook events and signatures, robot messages, the outcome
of an HTTP reply, and the SMS and e-mail texts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from integrations import webhooks
from integrations.http_outcome import RETRY_AFTER_CAP, SUCCESS, Outcome, classify
from integrations.mail import MailSettings, build_code_message
from integrations.sms import SmsSettings, check_template, normalise_phone, render_sms

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CODES: list[dict[str, Any]] = [
    {
        "id": "c1",
        "code": "GIFT-AAAA-1111",
        "password": "9876",
        "expiresAt": AT + timedelta(days=30),
    },
    {"id": "c2", "code": "GIFT-BBBB-2222", "password": None, "expiresAt": None},
]


def paid_event(
    codes: list[dict[str, Any]] | None = None, name: str = "爱奇艺月卡"
) -> dict[str, Any]:
    return webhooks.order_paid_event("o1", "ch1", "p1", name, codes or CODES, AT)


# --- events ---------------------------------------------------------------------------------


def test_order_paid_event_has_type_timestamp_and_json_ready_codes() -> None:
    assert paid_event() == {
        "type": "order.paid",
        "timestamp": "2025-03-01T12:00:00Z",
        "data": {
            "orderId": "o1",
            "channelId": "ch1",
            "productId": "p1",
            "productName": "爱奇艺月卡",
            "codes": [
                {
                    "id": "c1",
                    "code": "GIFT-AAAA-1111",
                    "password": "9876",
                    "expiresAt": "2025-03-31T12:00:00Z",
                },
                {"id": "c2", "code": "GIFT-BBBB-2222", "password": None, "expiresAt": None},
            ],
        },
    }


def test_an_event_time_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        webhooks.event("order.paid", {}, datetime(2025, 3, 1, 12, 0))


# --- Standard Webhooks -----------------------------------------------------------------------


def test_the_standardwebhooks_package_verifies_our_signature() -> None:
    # Given a fresh secret and a body signed now
    secret = webhooks.new_secret()
    body = webhooks.encode(paid_event())
    now = int(datetime.now(UTC).timestamp())
    headers = webhooks.sign_generic(secret, "msg_42", now, body)

    # Then the reference implementation accepts it and returns the event
    assert headers["webhook-id"] == "msg_42"
    assert headers["webhook-timestamp"] == str(now)
    assert Webhook(secret).verify(body, headers) == paid_event()


def test_a_tampered_body_or_another_id_fails_verification() -> None:
    secret = webhooks.new_secret()
    body = webhooks.encode(paid_event())
    headers = webhooks.sign_generic(secret, "msg_42", int(datetime.now(UTC).timestamp()), body)

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"GIFT-AAAA", b"GIFT-ZZZZ"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_43"})
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = webhooks.new_secret(), webhooks.new_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


@pytest.mark.parametrize("secret", ["not-whsec", "whsec_", "whsec_!!!notbase64"])
def test_a_malformed_secret_is_refused_without_being_echoed(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret") as caught:
        webhooks.sign_generic(secret, "msg_1", 1, b"{}")
    assert secret not in str(caught.value)


# --- WeCom and DingTalk ----------------------------------------------------------------------


def test_wecom_message_is_bilingual_markdown_with_each_code() -> None:
    payload = webhooks.wecom_payload(paid_event())

    assert payload["msgtype"] == "markdown"
    assert list(payload["markdown"]) == ["content"]
    content = payload["markdown"]["content"]
    assert content.splitlines() == [
        "**订单已支付 / Order paid**",
        "> 商品 / Product: 爱奇艺月卡",
        "> 订单 / Order: o1",
        "> 时间 / Time: 2025-03-01T12:00:00Z",
        "卡密 / Codes (2):",
        "1. 卡号 / Code: `GIFT-AAAA-1111` 密码 / Password: `9876`"
        " 有效期至 / Expires: 2025-03-31T12:00:00Z",
        "2. 卡号 / Code: `GIFT-BBBB-2222`",
    ]


def test_wecom_message_keeps_whole_codes_within_4096_bytes_and_counts_the_rest() -> None:
    # Given more codes than one message can hold
    codes: list[dict[str, Any]] = [
        {"id": str(i), "code": f"CODE-{i:04d}-长码", "password": f"PW{i:04d}", "expiresAt": None}
        for i in range(300)
    ]
    content = webhooks.wecom_payload(paid_event(codes))["markdown"]["content"]

    # Then it fits, every line shown is a whole code, and the note counts the ones left out
    assert len(content.encode()) <= 4096
    shown = [line for line in content.splitlines() if re.match(r"\d+\. ", line)]
    assert shown[-1] == f"{len(shown)}. 卡号 / Code: `CODE-{len(shown) - 1:04d}-长码`" + (
        f" 密码 / Password: `PW{len(shown) - 1:04d}`"
    )
    left = 300 - len(shown)
    assert left > 0
    assert content.splitlines()[-1] == (
        f"…另有 {left} 项未显示，请在后台查看 / {left} more not shown; see the console"
    )


def test_an_oversized_product_name_is_cut_on_a_character_boundary() -> None:
    content = webhooks.wecom_payload(paid_event(name="长" * 3000))["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.endswith("…")


def test_a_newline_in_a_value_cannot_forge_lines_of_the_message() -> None:
    content = webhooks.wecom_payload(paid_event(name="Card\n# 假标题\n> fake"))["markdown"][
        "content"
    ]
    assert "> 商品 / Product: Card # 假标题 > fake" in content.splitlines()


def test_other_events_are_listed_key_by_key() -> None:
    other = webhooks.event("code.frozen", {"codeId": "c9", "count": 2}, AT)
    content = webhooks.wecom_payload(other)["markdown"]["content"]
    assert content.splitlines() == [
        "**事件 / Event: code.frozen**",
        "> 时间 / Time: 2025-03-01T12:00:00Z",
        "- codeId: c9",
        "- count: 2",
    ]


def test_dingtalk_message_is_markdown_with_title_and_paragraphs() -> None:
    payload = webhooks.dingtalk_payload(paid_event())

    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["title"] == "订单已支付 / Order paid"
    paragraphs = payload["markdown"]["text"].split("\n\n")
    assert paragraphs[0] == "**订单已支付 / Order paid**"
    assert "2. 卡号 / Code: GIFT-BBBB-2222" in paragraphs


def _dingtalk_reference_sign(secret: str, timestamp_ms: int) -> str:
    # DingTalk's documented algorithm, written out independently of the code under test.
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def test_dingtalk_sign_matches_the_documented_algorithm() -> None:
    secret = "SECb6e1c0f7f08a5c37e1d9a1f5e9c3a6b4d2e8f0a1c3b5d7e9f1a3c5b7d9e1f3a5"
    timestamp = 1_740_830_400_000

    assert webhooks.dingtalk_sign(secret, timestamp) == _dingtalk_reference_sign(secret, timestamp)


def test_dingtalk_signed_url_keeps_the_token_and_url_encodes_the_sign() -> None:
    secret = "SEC0123456789abcdef"
    # Chosen so the signature holds "+", "/" or "=", which must arrive percent-encoded.
    timestamp = next(
        t
        for t in range(1_740_830_400_000, 1_740_830_400_100)
        if "+" in _dingtalk_reference_sign(secret, t)
    )
    url = webhooks.dingtalk_signed_url(
        "https://oapi.dingtalk.com/robot/send?access_token=tok", secret, timestamp
    )

    query = urlsplit(url).query
    expected = _dingtalk_reference_sign(secret, timestamp)
    assert f"sign={quote_plus(expected)}" in query.split("&")
    assert parse_qs(query) == {
        "access_token": ["tok"],
        "timestamp": [str(timestamp)],
        "sign": [expected],
    }


# --- classify --------------------------------------------------------------------------------


def retry(error: str, after: float | None = None) -> Outcome:
    return Outcome(ok=False, retry=True, gone=False, error=error, retry_after=after)


def fail(error: str) -> Outcome:
    return Outcome(ok=False, retry=False, gone=False, error=error, retry_after=None)


NO_ERRCODE = "2xx reply without an errcode"


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {}, None, SUCCESS),
        (204, {}, None, SUCCESS),
        (410, {}, None, Outcome(False, False, True, "HTTP 410 gone", None)),
        (503, {"Retry-After": "7"}, None, retry("HTTP 503", 7.0)),
        (429, {"retry-after": " 1.5 "}, None, retry("HTTP 429", 1.5)),
        (500, {}, None, retry("HTTP 500")),
        (408, {}, None, retry("HTTP 408")),
        (502, {"Retry-After": "99999"}, None, retry("HTTP 502", 3600.0)),
        (503, {"Retry-After": "soon"}, None, retry("HTTP 503")),
        (503, {"Retry-After": "nan"}, None, retry("HTTP 503")),
        (404, {"Retry-After": "7"}, None, fail("HTTP 404")),
        (401, {}, None, fail("HTTP 401")),
        (302, {}, None, fail("HTTP 302: redirect not followed")),
        (200, {}, {"errcode": 0, "errmsg": "ok"}, SUCCESS),
        (200, {}, {"errcode": 45009, "errmsg": "freq"}, retry("errcode 45009")),
        (200, {}, {"errcode": 93000, "errmsg": "GIFT-1"}, fail("errcode 93000")),
        (200, {}, b"<html>GIFT-1</html>", fail(NO_ERRCODE)),
        (200, {}, {"errcode": True}, fail(NO_ERRCODE)),
        (503, {}, {"errcode": 0}, retry("HTTP 503")),
    ],
)
def test_classify(status: int, headers: dict[str, str], body: object, expected: Outcome) -> None:
    assert classify(status, headers, body, retry_errcodes={45009}, now=AT) == expected


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("Sat, 01 Mar 2025 12:02:00 GMT", 120.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),
        ("Mon, 03 Mar 2025 12:00:00 GMT", RETRY_AFTER_CAP),
    ],
)
def test_retry_after_as_an_http_date_counts_from_now(header: str, seconds: float) -> None:
    outcome = classify(503, {"Retry-After": header}, None, now=AT)
    assert outcome.retry
    assert outcome.retry_after == seconds


# --- SMS and e-mail texts --------------------------------------------------------------------


def test_sms_template_gets_product_codes_and_order() -> None:
    text = render_sms("【权益】{product} 卡密：{codes}（订单 {order}）", "Q币 10元", CODES, "o1")
    assert text == "【权益】Q币 10元 卡密：GIFT-AAAA-1111 / 9876; GIFT-BBBB-2222（订单 o1）"


@pytest.mark.parametrize(
    "template", ["{product.__class__}", "{codes[0]}", "{0}", "{}", "{phone}", "{product:{x}}", "{"]
)
def test_sms_template_allows_only_the_three_placeholders(template: str) -> None:
    with pytest.raises(ValueError, match="SMS template"):
        check_template(template)


def test_sms_settings_check_the_template_and_hide_the_api_key() -> None:
    with pytest.raises(ValueError, match="SMS template"):
        SmsSettings("https://sms.example", "key-123", "{secret}", None, 5.0)
    settings = SmsSettings("https://sms.example", "key-123", "{codes}", "Quanyi", 5.0)
    assert "key-123" not in repr(settings)


@pytest.mark.parametrize(
    ("phone", "normal"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("12812345678", None),
        ("1381234567", None),
        ("+0123456789", None),
        ("+86138123456789012", None),
        ("abc", None),
        ("", None),
    ],
)
def test_phone_numbers_are_checked_loosely(phone: str, normal: str | None) -> None:
    assert normalise_phone(phone) == normal


def test_code_email_has_both_languages_and_an_escaped_html_part() -> None:
    message = build_code_message(
        "buyer@example.com", "o1", "<b>Card</b>\nX", CODES, "Quanyi <noreply@quanyi.example>"
    )
    parsed = message_from_bytes(message.as_bytes(), policy=email_policy.default)
    assert isinstance(parsed, EmailMessage)

    assert parsed["Subject"] == "您的卡密 / Your codes — <b>Card</b> X"
    assert parsed["To"] == "buyer@example.com"
    assert parsed["Message-ID"].endswith("@quanyi.example>")
    plain = _part(parsed, "plain")
    assert "1. 卡号：GIFT-AAAA-1111\n   密码：9876\n   有效期至：2025-03-31 12:00 UTC" in plain
    assert (
        "1. Code: GIFT-AAAA-1111\n   Password: 9876\n   Valid until: 2025-03-31 12:00 UTC" in plain
    )
    html_part = _part(parsed, "html")
    assert "&lt;b&gt;Card&lt;/b&gt; X" in html_part
    assert "<b>Card" not in html_part
    assert ">GIFT-BBBB-2222</code>" in html_part


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    content: str = part.get_content()
    return content


@pytest.mark.parametrize("to", ["not-an-address", "a@b", "x@example.com\nBcc: y@example.com"])
def test_code_email_refuses_what_is_no_address(to: str) -> None:
    with pytest.raises(ValueError, match="recipient"):
        build_code_message(to, "o1", "Card", CODES, "noreply@quanyi.example")


def test_mail_settings_hide_the_password_and_refuse_two_tls_modes() -> None:
    settings = MailSettings("smtp.example", 465, True, False, "u", "hunter2", "n@q.example", 10)
    assert "hunter2" not in repr(settings)
    with pytest.raises(ValueError, match="exclude"):
        MailSettings("smtp.example", 465, True, True, None, None, "n@q.example", 10)
