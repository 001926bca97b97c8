"""Encryption at rest without I/O: AES-256-GCM blobs, fingerprints, masks and import rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from domain import crypto
from domain.codes import (
    MASK_PREFIX,
    CodeRow,
    CsvLayout,
    RowError,
    RowFault,
    check_row,
    code_aad,
    masked,
    parse_expiry,
    parse_header,
    password_aad,
    tail,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
FINGERPRINT_KEY = b"f" * 32
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@given(st.binary(max_size=300), st.binary(max_size=64))
def test_seal_then_open_gives_the_plaintext_back(plaintext: bytes, aad: bytes) -> None:
    # Given a blob sealed under a key and associated data
    blob = crypto.seal(KEY, plaintext, aad)

    # Then it opens to the same bytes with the same key and data, and does not carry them
    assert crypto.open_sealed(KEY, blob, aad) == plaintext
    assert len(blob) == crypto.NONCE + len(plaintext) + 16
    if len(plaintext) >= 8:
        assert plaintext not in blob


def test_the_same_plaintext_seals_differently_each_time() -> None:
    # Given one plaintext sealed twice
    # Then the nonces differ, so equal codes cannot be spotted by their ciphertexts
    assert crypto.seal(KEY, b"GIFT-1234-5678", b"x") != crypto.seal(KEY, b"GIFT-1234-5678", b"x")


@pytest.mark.parametrize("position", [0, crypto.NONCE, -1])
def test_a_tampered_blob_fails_to_open(position: int) -> None:
    # Given a sealed blob with one bit flipped in its nonce, ciphertext or tag
    blob = bytearray(crypto.seal(KEY, b"GIFT-1234-5678", b"code:fp"))
    blob[position] ^= 0x01

    # Then opening it fails instead of returning altered plaintext
    with pytest.raises(InvalidTag):
        crypto.open_sealed(KEY, bytes(blob), b"code:fp")


def test_a_blob_opens_only_with_its_key_and_associated_data() -> None:
    # Given a code's blob, bound to its row's fingerprint and the code field
    fingerprint = crypto.fingerprint(FINGERPRINT_KEY, "GIFT-1234-5678")
    blob = crypto.seal(KEY, b"GIFT-1234-5678", code_aad(fingerprint))

    # Then another key, another row's fingerprint, or the password field all fail
    other_row = crypto.fingerprint(FINGERPRINT_KEY, "GIFT-0000-0000")
    for key, aad in [
        (OTHER_KEY, code_aad(fingerprint)),
        (KEY, code_aad(other_row)),
        (KEY, password_aad(fingerprint)),
    ]:
        with pytest.raises(InvalidTag):
            crypto.open_sealed(key, blob, aad)


def test_fingerprints_are_stable_keyed_and_distinct() -> None:
    # Given codes fingerprinted with one key
    first = crypto.fingerprint(FINGERPRINT_KEY, "GIFT-1234-5678")

    # Then the same code gives the same 32 bytes, another code or key something else
    assert crypto.fingerprint(FINGERPRINT_KEY, "GIFT-1234-5678") == first
    assert len(first) == 32
    assert crypto.fingerprint(FINGERPRINT_KEY, "GIFT-1234-5679") != first
    assert crypto.fingerprint(b"g" * 32, "GIFT-1234-5678") != first
    # And it is plain HMAC-SHA256, pinned: stored fingerprints must survive refactoring
    assert crypto.fingerprint(b"k" * 32, "abc").hex() == (
        "af61b693912efc56e2e46f949719ea10a9e80d68f8dcfb84e26cac5330da3c74"
    )


def test_derived_keys_differ_by_purpose() -> None:
    master = b"m" * 32
    assert crypto.derive(master, "fingerprint") != crypto.derive(master, "wrap")
    assert crypto.derive(master, "wrap") == crypto.derive(master, "wrap")
    assert len(crypto.derive(master, "wrap")) == 32


def test_mask_shows_only_the_last_four_characters() -> None:
    assert crypto.mask("GIFT-1234-5678") == "••••••••5678"
    assert crypto.mask("ABCDEFGH") == "••••EFGH"
    assert crypto.mask("ABCD") == "ABCD"


@given(st.text(min_size=1, max_size=300))
def test_a_listing_never_shows_a_whole_code(code: str) -> None:
    # Given any code, stored as its tail only
    stored = tail(code)

    # Then at most four characters and at most half the code are kept,
    # and the listing shows them behind the mask
    assert len(stored) <= 4
    assert len(stored) * 2 <= len(code)
    assert code.endswith(stored)
    assert masked(stored) == MASK_PREFIX + stored


def test_listing_of_a_typical_code() -> None:
    assert masked(tail("GIFT-1234-5678")) == "••••5678"
    assert masked(tail("ABC")) == "••••C"


def test_row_rules() -> None:
    later = NOW + timedelta(days=30)
    # Valid rows are cleaned: surrounding spaces go, an empty password is none
    assert check_row(1, "  GIFT-1  ", " ", later, NOW) == CodeRow(1, "GIFT-1", None, later)
    assert check_row(2, "GIFT-2", "pw", None, NOW) == CodeRow(2, "GIFT-2", "pw", None)
    # A time without a zone is UTC
    naive = check_row(3, "GIFT-3", None, datetime(2030, 1, 1), NOW)
    assert isinstance(naive, CodeRow)
    assert naive.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    # Refusals carry the row and never the code
    assert check_row(4, "   ", None, None, NOW) == RowError(
        4, RowFault.INVALID_INPUT, "The code is empty."
    )
    assert check_row(5, "X" * 257, None, None, NOW) == RowError(
        5, RowFault.INVALID_INPUT, "The code is longer than 256 characters."
    )
    assert check_row(6, "GIFT\x00-6", None, None, NOW) == RowError(
        6, RowFault.INVALID_INPUT, "The code contains control characters."
    )
    assert check_row(7, "GIFT-7", "p" * 257, None, NOW) == RowError(
        7, RowFault.INVALID_INPUT, "The password is longer than 256 characters."
    )
    assert check_row(8, "GIFT-8", None, NOW, NOW) == RowError(
        8, RowFault.CODE_EXPIRED, "The code has already expired."
    )


def test_expiry_cells() -> None:
    assert parse_expiry("") is None
    assert parse_expiry("2030-01-01") == datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_expiry("2030-01-01T08:00:00+08:00") == datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_expiry(" 2030-01-01T00:00:00Z ") == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_expiry("next tuesday")


def test_csv_headers() -> None:
    assert parse_header(["code", "password", "expiresAt"]) == CsvLayout(0, 1, 2, 3)
    assert parse_header([" Code ", "EXPIRESAT"]) == CsvLayout(0, None, 1, 2)
    assert parse_header(["expiresAt", "code"]) == CsvLayout(1, None, 0, 2)
    # A file without a header: its first row is a code, which the message must not quote
    assert parse_header(["GIFT-1234-5678", "pin"]) == (
        "The first row must be the header code,password,expiresAt: its cell 1 names none of them."
    )
    assert parse_header(["password"]) == (
        "The first row must be the header code,password,expiresAt: it has no code column."
    )
    assert parse_header(["code", "code"]) == "The column code appears twice in the header."
