"""The gateway notification's pure rules: its signature and its body."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from domain.payments import BadNotification, Notification, parse, sign, signature_ok

SECRET = b"gateway-secret"
BODY = json.dumps(
    {"reference": "QY1", "transactionId": "tx-1", "amount": "25.00", "status": "success"}
).encode()


def test_a_notification_is_read_from_its_body() -> None:
    assert parse(BODY) == Notification("QY1", "tx-1", Decimal("25.00"), "SUCCESS")


def test_the_signature_is_the_bodys_hmac_in_any_case() -> None:
    assert signature_ok(SECRET, BODY, sign(SECRET, BODY).upper())
    assert not signature_ok(SECRET, BODY + b" ", sign(SECRET, BODY))
    assert not signature_ok(SECRET, BODY, None)


def test_a_signature_beyond_ascii_is_wrong_not_an_error() -> None:
    assert not signature_ok(SECRET, BODY, "zz\u00e9")
    assert not signature_ok(SECRET, BODY, sign(SECRET, BODY)[:-1] + "\u00e9")


@pytest.mark.parametrize("name", ["reference", "transactionId", "status"])
def test_text_with_a_nul_is_refused(name: str) -> None:
    data = json.loads(BODY)
    data[name] = "a\x00b"
    with pytest.raises(BadNotification, match=f"`{name}` must not contain NUL characters"):
        parse(json.dumps(data).encode())


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]
)
def test_json_nested_too_deep_is_not_json(body: bytes) -> None:
    with pytest.raises(BadNotification, match="The body is not JSON"):
        parse(body)
