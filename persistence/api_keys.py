"""Channel API keys (only the hash of each secret is stored)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain.access import Role
from persistence.queries import queries
from persistence.types import Db

Q = queries("api_keys")


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: int
    channel_id: int
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKeyRecord:
        return cls(
            row["id"],
            row["channel_id"],
            row["name"],
            Role(row["role"]),
            row["created_at"],
            row["revoked_at"],
        )


async def insert(
    db: Db,
    channel_id: int,
    name: str,
    role: Role,
    secret_hash: bytes,
    merchant_id: int | None = None,
) -> ApiKeyRecord:
    row = await db.fetchrow(Q["insert"], channel_id, name, role.value, secret_hash, merchant_id)
    assert row is not None
    return ApiKeyRecord.from_row(row)


async def for_authentication(db: Db, key_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(Q["for_authentication"], key_id)


async def get_in_subtree(db: Db, key_id: int, ancestor_path: str) -> ApiKeyRecord | None:
    row = await db.fetchrow(Q["get_in_subtree"], key_id, ancestor_path)
    return ApiKeyRecord.from_row(row) if row else None


async def revoke(db: Db, key_id: int) -> ApiKeyRecord:
    row = await db.fetchrow(Q["revoke"], key_id)
    assert row is not None, "the key was checked by the caller"
    return ApiKeyRecord.from_row(row)


async def page_of_channel(db: Db, channel_id: int, after_id: int, limit: int) -> list[ApiKeyRecord]:
    rows = await db.fetch(Q["page_of_channel"], channel_id, after_id, limit)
    return [ApiKeyRecord.from_row(r) for r in rows]


async def revoke_named(db: Db, channel_id: int, name: str) -> None:
    await db.execute(Q["revoke_named"], channel_id, name)
