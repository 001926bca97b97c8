"""Credentials: API keys, session tokens and password hashes.

API keys are ``qk_<id>_<secret>``: the id finds the row, the 256-bit secret is compared
by its SHA-256 (a fast hash is right for a random secret; argon2 is for passwords).
Session tokens are ``qs_<payload>.<signature>``, HMAC-SHA256 signed and expiring.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PREFIX = "qk_"
SESSION_PREFIX = "qs_"

_hasher = PasswordHasher()


class CredentialError(Exception):
    """A credential that cannot be accepted; the message is safe to show the caller."""


def new_api_key_secret() -> tuple[str, bytes]:
    secret = secrets.token_urlsafe(32)
    return secret, hash_api_key_secret(secret)


def format_api_key(key_id: int, secret: str) -> str:
    return f"{API_KEY_PREFIX}{key_id}_{secret}"


def hash_api_key_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_api_key(token: str) -> tuple[int, str]:
    # Secrets are ASCII (token_urlsafe); a lone surrogate or "²" (isdigit, but not int)
    # must be refused here, not fail later with another exception.
    if not token.startswith(API_KEY_PREFIX) or not token.isascii():
        raise CredentialError("Malformed API key.")
    key_id, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not sep or not key_id.isdigit() or len(key_id) > 18 or not secret:
        raise CredentialError("Malformed API key.")
    return int(key_id), secret


def api_key_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_api_key_secret(secret), stored_hash)


def sign_session(user_id: int, expires_at: datetime, key: bytes) -> str:
    payload = _b64(json.dumps({"u": user_id, "e": int(expires_at.timestamp())}).encode())
    return f"{SESSION_PREFIX}{payload}.{_b64(_mac(payload, key))}"


def verify_session(token: str, key: bytes, now: datetime) -> int:
    """Return the user id of a valid session token, or raise CredentialError."""
    if not token.startswith(SESSION_PREFIX) or not token.isascii():
        raise CredentialError("Malformed session token.")
    payload, sep, signature = token[len(SESSION_PREFIX) :].partition(".")
    try:
        given = _unb64(signature)
    except ValueError:
        raise CredentialError("Malformed session token.") from None
    if not sep or not hmac.compare_digest(given, _mac(payload, key)):
        raise CredentialError("Malformed session token.")
    claims = json.loads(_unb64(payload))
    if claims["e"] <= now.timestamp():
        raise CredentialError("Session expired; log in again.")
    return int(claims["u"])


def session_expiry(now: datetime, ttl: timedelta) -> datetime:
    return (now + ttl).replace(microsecond=0)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def dummy_password_check(password: str) -> None:
    """Spend the time of a real check so a login for an unknown e-mail is not faster."""
    verify_password(_dummy_hash(), password)


def _mac(payload: str, key: bytes) -> bytes:
    return hmac.new(key, b"session:" + payload.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("bad base64") from error


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))
