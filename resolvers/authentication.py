"""Turning the bearer token of a request into the Principal behind it."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.access import Principal, Role
from domain.credentials import (
    API_KEY_PREFIX,
    SESSION_PREFIX,
    CredentialError,
    api_key_matches,
    parse_api_key,
    verify_session,
)
from persistence import api_keys, users
from persistence.read_cache import ReadCache
from persistence.types import Db


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (the scheme is optional)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and not token.strip():
        return None
    if not token:
        return scheme
    if scheme.lower() != "bearer":
        raise CredentialError("Use `Authorization: Bearer <token>`.")
    return token.strip()


async def authenticate(
    db: Db, reads: ReadCache, session_key: bytes, authorization: str | None
) -> Principal | None:
    """The caller behind a credential: None when none was given.

    Raises CredentialError with a message fit for the caller when one was given but
    cannot be accepted; revocation and disabled users take effect on the next request
    (they are mutations, which invalidate ``reads``). The secret is checked every time;
    only the stored rows are cached.
    """
    token = bearer_token(authorization)
    if token is None:
        return None
    if token.startswith(API_KEY_PREFIX):
        return await _api_key_principal(db, reads, token)
    if token.startswith(SESSION_PREFIX):
        user_id = verify_session(token, session_key, datetime.now(UTC))
        principal = await reads.load(("user", user_id), lambda: principal_for_user(db, user_id))
        if principal is None:
            raise CredentialError("This session's user no longer exists or is disabled.")
        return principal
    raise CredentialError("Unrecognised token: expected an API key or a session token.")


async def principal_for_user(db: Db, user_id: int) -> Principal | None:
    row = await users.principal_row(db, user_id)
    if row is None:
        return None
    return Principal(
        channel_id=row["channel_id"],
        channel_path=row["channel_path"],
        role=Role(row["role"]),
        user_id=row["id"],
        merchant_id=row["merchant_id"],
    )


async def _api_key_principal(db: Db, reads: ReadCache, token: str) -> Principal:
    key_id, secret = parse_api_key(token)
    row = await reads.load(("api-key", key_id), lambda: api_keys.for_authentication(db, key_id))
    if row is None or not api_key_matches(secret, row["secret_hash"]):
        raise CredentialError("Unknown API key.")
    if row["revoked_at"] is not None:
        raise CredentialError("This API key has been revoked.")
    return Principal(
        channel_id=row["channel_id"],
        channel_path=row["channel_path"],
        role=Role(row["role"]),
        api_key_id=key_id,
        merchant_id=row["merchant_id"],
    )
