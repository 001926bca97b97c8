"""Supplier protocol signatures: what is covered, how old they may be, and odd headers."""

from __future__ import annotations

import pytest

from integrations.supplier_signing import MAX_SKEW, RESPONSE, sign, verify

SECRET = b"supplier-shared-secret-0123456789"
TS = 1_780_000_000
BODY = b'{"ref":"r-1","sku":"GAME-100","quantity":2}'


def test_the_signature_is_hmac_sha256_over_timestamp_method_path_and_body() -> None:
    # A fixed vector, so an implementation on the supplier's side can be checked against it:
    # hex(HMAC-SHA256(secret, "1780000000\nPOST\n/orders\n" + body)), computed with openssl
    headers = sign(SECRET, "POST", "/orders", BODY, TS)
    assert headers == {
        "X-Timestamp": "1780000000",
        "X-Signature": "1e9153aeb09019d33db11e8dfc840d89dc566bfb29c29b87fd7488fda8f38c58",
    }


def test_a_signed_request_verifies() -> None:
    headers = sign(SECRET, "POST", "/orders", BODY, TS)
    assert verify(SECRET, "POST", "/orders", BODY, headers, TS + 1)


def test_header_names_are_matched_without_regard_to_case() -> None:
    headers = {k.lower(): v for k, v in sign(SECRET, "GET", "/catalog", b"", TS).items()}
    assert verify(SECRET, "GET", "/catalog", b"", headers, TS)


@pytest.mark.parametrize(
    ("secret", "method", "path", "body"),
    [
        (b"another-secret-of-enough-length", "POST", "/orders", BODY),
        (SECRET, "GET", "/orders", BODY),
        (SECRET, "POST", "/orders/r-1", BODY),
        (SECRET, "POST", "/orders", BODY.replace(b"2", b"3")),
        (SECRET, "POST", "/orders", b""),
    ],
)
def test_any_change_breaks_the_signature(
    secret: bytes, method: str, path: str, body: bytes
) -> None:
    headers = sign(SECRET, "POST", "/orders", BODY, TS)
    assert not verify(secret, method, path, body, headers, TS)


def test_a_response_signature_is_no_request_signature_and_the_reverse() -> None:
    # Given a signed response to GET /catalog
    headers = sign(SECRET, RESPONSE, "/catalog", b"{}", TS)

    # Then it cannot be passed off as a request, nor as the answer to another path
    assert verify(SECRET, RESPONSE, "/catalog", b"{}", headers, TS)
    assert not verify(SECRET, "GET", "/catalog", b"{}", headers, TS)
    assert not verify(SECRET, RESPONSE, "/orders/x", b"{}", headers, TS)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    headers = sign(SECRET, "GET", "/catalog", b"", TS)
    headers["X-Timestamp"] = str(TS + 1)
    assert not verify(SECRET, "GET", "/catalog", b"", headers, TS)


@pytest.mark.parametrize("offset", [MAX_SKEW, -MAX_SKEW])
def test_signatures_within_the_clock_skew_verify(offset: float) -> None:
    headers = sign(SECRET, "GET", "/catalog", b"", TS)
    assert verify(SECRET, "GET", "/catalog", b"", headers, TS + offset)


@pytest.mark.parametrize("offset", [MAX_SKEW + 1, -MAX_SKEW - 1])
def test_signatures_outside_the_clock_skew_do_not(offset: float) -> None:
    # Given a captured request replayed later (or one from a clock far ahead)
    headers = sign(SECRET, "GET", "/catalog", b"", TS)
    assert not verify(SECRET, "GET", "/catalog", b"", headers, TS + offset)


def test_the_skew_can_be_tightened() -> None:
    headers = sign(SECRET, "GET", "/catalog", b"", TS)
    assert not verify(SECRET, "GET", "/catalog", b"", headers, TS + 31, max_skew=30)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Timestamp": str(TS)},
        {"X-Timestamp": str(TS), "X-Signature": ""},
        {"X-Timestamp": f"+{TS}", "X-Signature": "0" * 64},
        {"X-Timestamp": "1_780_000_000", "X-Signature": "0" * 64},
        {"X-Timestamp": str(TS), "X-Signature": "é" * 64},
        {"X-Timestamp": str(TS), "X-Signature": "zz" * 32},
    ],
)
def test_missing_or_malformed_headers_fail_without_raising(headers: dict[str, str]) -> None:
    assert not verify(SECRET, "GET", "/catalog", b"", headers, TS)
