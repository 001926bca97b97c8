"""Credentials without I/O: session tokens, API keys and password hashes."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.credentials import (
    API_KEY_PREFIX,
    SESSION_PREFIX,
    CredentialError,
    api_key_matches,
    format_api_key,
    hash_api_key_secret,
    hash_password,
    new_api_key_secret,
    parse_api_key,
    session_expiry,
    sign_session,
    verify_password,
    verify_session,
)

KEY = b"a session signing key"
OTHER_KEY = b"another deployment's key"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MALFORMED_SESSION = "Malformed session token."
MALFORMED_API_KEY = "Malformed API key."

# Anything a client might send, lone surrogates included: a WebSocket's
# connection_init payload is JSON, and JSON can spell "\ud800".
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=20)
# Near misses: our prefix, then parts that look like the real ones.
near_sessions = st.builds(lambda p, s: f"{SESSION_PREFIX}{p}.{s}", any_text, any_text)
near_api_keys = st.builds(lambda i, s: f"{API_KEY_PREFIX}{i}_{s}", digits | any_text, any_text)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- session tokens -------------------------------------------------------------------


@settings(max_examples=50)
@given(user_id=st.integers(min_value=1, max_value=2**62), ttl=st.integers(1, 10**7))
def test_session_token_round_trips(user_id: int, ttl: int) -> None:
    # Given a token signed for a user, valid for ttl more seconds
    token = sign_session(user_id, NOW + timedelta(seconds=ttl), KEY)

    # When it is verified with the same key before it expires
    # Then the same user comes back
    assert token.startswith(SESSION_PREFIX)
    assert verify_session(token, KEY, NOW) == user_id
    assert verify_session(token, KEY, NOW + timedelta(seconds=ttl - 1)) == user_id


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(days=400)])
def test_expired_session_is_refused(late: timedelta) -> None:
    # Given a token that expires at noon
    token = sign_session(7, NOW, KEY)

    # When it is checked at or after noon
    # Then it is refused as expired, with a message telling the caller what to do
    with pytest.raises(CredentialError) as refused:
        verify_session(token, KEY, NOW + late)
    assert str(refused.value) == "Session expired; log in again."


def test_session_expiry_is_whole_seconds_after_now() -> None:
    # Given a moment with a fraction of a second
    now = NOW.replace(microsecond=987654)

    # When a session's expiry is worked out
    expires = session_expiry(now, timedelta(hours=12))

    # Then it is the ttl later, without the fraction the token could not carry
    assert expires == NOW + timedelta(hours=12)
    assert verify_session(sign_session(1, expires, KEY), KEY, expires - timedelta(seconds=1)) == 1


def test_tampered_payload_is_refused() -> None:
    # Given a valid token for user 7
    token = sign_session(7, NOW + timedelta(hours=1), KEY)
    payload, signature = token.removeprefix(SESSION_PREFIX).split(".")
    claims = json.loads(_unb64(payload))
    assert claims["u"] == 7

    # When its payload is rewritten to another user, or to a later expiry, keeping the signature
    forged_user = _b64(json.dumps({**claims, "u": 1}).encode())
    forged_expiry = _b64(json.dumps({**claims, "e": claims["e"] + 10**6}).encode())

    # Then neither verifies
    for forged in (forged_user, forged_expiry):
        with pytest.raises(CredentialError, match=f"^{MALFORMED_SESSION}$"):
            verify_session(f"{SESSION_PREFIX}{forged}.{signature}", KEY, NOW)


def test_tampered_signature_is_refused() -> None:
    # Given a valid token and another valid token's signature
    token = sign_session(7, NOW + timedelta(hours=1), KEY)
    other = sign_session(8, NOW + timedelta(hours=1), KEY)
    payload, signature = token.removeprefix(SESSION_PREFIX).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    # When the signature is changed, cut, dropped or borrowed
    forgeries = [
        f"{SESSION_PREFIX}{payload}.{flipped}",
        f"{SESSION_PREFIX}{payload}.{signature[:-2]}",
        f"{SESSION_PREFIX}{payload}.",
        f"{SESSION_PREFIX}{payload}",
        f"{SESSION_PREFIX}{payload}.{other.split('.')[1]}",
    ]

    # Then none verifies
    for forged in forgeries:
        with pytest.raises(CredentialError, match=f"^{MALFORMED_SESSION}$"):
            verify_session(forged, KEY, NOW)
    # And the untouched token still does
    assert verify_session(token, KEY, NOW) == 7


def test_token_signed_with_another_key_is_refused() -> None:
    # Given a token signed by another deployment
    token = sign_session(7, NOW + timedelta(hours=1), OTHER_KEY)

    # When this deployment verifies it
    # Then it is refused
    with pytest.raises(CredentialError, match=f"^{MALFORMED_SESSION}$"):
        verify_session(token, KEY, NOW)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "qs_",
        "qs_.",
        "qs_..",
        "qs_abc.def",
        "qs_!!!.???",
        "qs_é.x",
        "qs_\x00.\x00",
        "qs_\ud800.AAAA",
        "qs_AAAA.\ud800",
        "garbage",
        "qk_1_secret",
        "Bearer qs_abc.def",
    ],
)
def test_garbage_session_token_raises_credential_error(garbage: str) -> None:
    # Given a string that is no token of ours
    # When it is verified
    # Then it is refused as malformed, not with any other exception
    with pytest.raises(CredentialError, match=f"^{MALFORMED_SESSION}$"):
        verify_session(garbage, KEY, NOW)


@settings(max_examples=300)
@given(garbage=any_text | any_text.map(lambda s: SESSION_PREFIX + s) | near_sessions)
@example(garbage=SESSION_PREFIX + "e30." + _b64(b"x" * 32))
@example(garbage=SESSION_PREFIX + "\udc80." + _b64(b"x" * 32))
def test_random_session_tokens_only_raise_credential_error(garbage: str) -> None:
    # Given any string at all, with or without our prefix
    # When it is verified
    # Then it is refused with CredentialError and nothing else
    with pytest.raises(CredentialError):
        verify_session(garbage, KEY, NOW)


# --- API keys -------------------------------------------------------------------------


@settings(max_examples=100)
@given(
    key_id=st.integers(min_value=1, max_value=10**18 - 1),
    secret=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1),
)
def test_api_key_round_trips(key_id: int, secret: str) -> None:
    # Given a key id and a secret that may itself contain "_"
    token = format_api_key(key_id, secret)

    # When the formatted key is parsed
    # Then the same id and secret come back
    assert token.startswith(API_KEY_PREFIX)
    assert parse_api_key(token) == (key_id, secret)


def test_new_api_key_parses_back_to_its_secret() -> None:
    # Given a freshly generated secret of key 42
    secret, secret_hash = new_api_key_secret()

    # When the key handed to the client is parsed
    key_id, parsed = parse_api_key(format_api_key(42, secret))

    # Then it names key 42 and its secret matches the stored hash
    assert key_id == 42
    assert api_key_matches(parsed, secret_hash)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "qk_",
        "qk_1",
        "qk_1_",
        "qk__secret",
        "qk_x_secret",
        "qk_-1_secret",
        "qk_+1_secret",
        "qk_1.5_secret",
        "qk_ 1_secret",
        "qk_0x1_secret",
        "qk_" + "9" * 19 + "_secret",
        "qk_²_secret",
        "qk_١٢_secret",
        "zz_1_secret",
        "QK_1_secret",
        "1_secret",
        "qs_1_secret",
        "qk_1_\ud800",
        "qk_1_sécret",
    ],
)
def test_malformed_api_keys_are_refused(malformed: str) -> None:
    # Given a string shaped nearly, but not quite, like qk_<id>_<secret>
    # When it is parsed as an API key
    # Then it is refused as malformed
    with pytest.raises(CredentialError, match=f"^{MALFORMED_API_KEY}$"):
        parse_api_key(malformed)


@settings(max_examples=300)
@given(garbage=any_text | any_text.map(lambda s: API_KEY_PREFIX + s) | near_api_keys)
@example(garbage="qk_³_secret")
@example(garbage="qk_7_\udfff")
def test_random_api_keys_parse_or_raise_credential_error(garbage: str) -> None:
    # Given any string at all
    # When it is parsed as an API key
    try:
        key_id, secret = parse_api_key(garbage)
    except CredentialError:
        return
    # Then it is refused, or it really is qk_<1 to 18 ASCII digits>_<ASCII secret>
    shape = re.fullmatch(r"qk_([0-9]{1,18})_(.+)", garbage, re.ASCII | re.DOTALL)
    assert shape is not None
    assert garbage.isascii()
    assert (key_id, secret) == (int(shape[1]), shape[2])


def test_api_key_matches_only_its_own_secret() -> None:
    # Given two generated secrets and their stored hashes
    secret, stored = new_api_key_secret()
    other, other_stored = new_api_key_secret()

    # Then each secret matches its own hash only, and a one-character change does not
    assert secret != other
    assert api_key_matches(secret, stored)
    assert not api_key_matches(other, stored)
    assert not api_key_matches(secret, other_stored)
    assert not api_key_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored)
    assert not api_key_matches("", stored)

    # And the stored hash is a fixed-size digest that does not contain the secret
    assert stored == hash_api_key_secret(secret)
    assert len(stored) == 32
    assert secret.encode() not in stored


# --- passwords ------------------------------------------------------------------------


def test_password_hash_is_argon2id_and_verifies() -> None:
    # Given a password hashed twice
    first = hash_password("correct horse battery staple")
    second = hash_password("correct horse battery staple")

    # Then both are salted argon2id hashes that do not contain the password
    assert first.startswith("$argon2id$")
    assert first != second
    assert "correct horse" not in first

    # And the password verifies against either, a wrong one against neither
    assert verify_password(first, "correct horse battery staple")
    assert verify_password(second, "correct horse battery staple")
    assert not verify_password(first, "correct horse battery stapler")
    assert not verify_password(first, "")


def test_password_check_against_a_broken_hash_is_false() -> None:
    # Given a stored value that is no argon2 hash
    # When a password is checked against it
    # Then the answer is no, not an exception
    assert not verify_password("not a hash", "whatever password")
    assert not verify_password("", "whatever password")
