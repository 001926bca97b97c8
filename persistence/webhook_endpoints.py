"""Webhook endpoints of channels, with their URL and signing secret sealed at rest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from persistence.catalog import RetiredKey
from persistence.keyring import Keyring
from persistence.queries import queries
from persistence.types import Db

Q = queries("webhook_endpoints")

# Must stay what key rotation re-seals webhook secrets with.
SECRET_AAD = b"webhook-secret"


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """An endpoint as listings show it: the URL masked, the secret not at all."""

    id: int
    channel_id: int
    kind: str
    display_url: str
    events: list[str]
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> EndpointRecord:
        return cls(
            id=row["id"],
            channel_id=row["channel_id"],
            kind=row["kind"],
            display_url=row["display_url"],
            events=list(row["events"]),
            disabled_at=row["disabled_at"],
            disabled_reason=row["disabled_reason"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class EndpointTarget:
    """Where and how to post: the URL (with any robot key) and the secret. Never log one."""

    url: str
    secret: str | None

    def __repr__(self) -> str:
        return "EndpointTarget(url=<secret>, secret=<secret>)"


def seal(keyring: Keyring, target: EndpointTarget) -> tuple[int, bytes]:
    """(key id, blob) under the keyring's active key."""
    plain = json.dumps({"url": target.url, "secret": target.secret})
    return keyring.encrypt(plain, aad=SECRET_AAD)


async def open_sealed(db: Db, keyring: Keyring, key_id: int, blob: bytes) -> EndpointTarget:
    opened = json.loads(await keyring.decrypt(db, key_id, blob, SECRET_AAD))
    return EndpointTarget(url=opened["url"], secret=opened["secret"])


async def insert(
    db: Db,
    channel_id: int,
    kind: str,
    display_url: str,
    events: list[str],
    sealed: tuple[int, bytes],
    limit: int,
) -> EndpointRecord | None:
    """None when the channel has ``limit`` active endpoints already. Raises RetiredKey when
    the sealing key was deleted by a rotation meanwhile: seal again and retry."""
    key_id, blob = sealed
    try:
        row = await db.fetchrow(
            Q["insert"], channel_id, kind, display_url, events, blob, key_id, limit
        )
    except asyncpg.ForeignKeyViolationError as error:
        if error.constraint_name == "webhook_endpoints_key_id_fkey":
            raise RetiredKey from error
        raise
    return EndpointRecord.from_row(row) if row else None


async def of_channel(db: Db, channel_id: int) -> list[EndpointRecord]:
    return [EndpointRecord.from_row(r) for r in await db.fetch(Q["of_channel"], channel_id)]


async def get_in_subtree(db: Db, endpoint_id: int, ancestor_path: str) -> EndpointRecord | None:
    row = await db.fetchrow(Q["get_in_subtree"], endpoint_id, ancestor_path)
    return EndpointRecord.from_row(row) if row else None


async def disable(db: Db, endpoint_id: int, reason: str) -> EndpointRecord:
    row = await db.fetchrow(Q["disable"], endpoint_id, reason)
    assert row is not None, "endpoints are never deleted"
    return EndpointRecord.from_row(row)
