"""Staff users of channels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain.access import Role
from persistence.queries import queries
from persistence.types import Db

Q = queries("users")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    channel_id: int
    email: str
    role: Role
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> UserRecord:
        return cls(row["id"], row["channel_id"], row["email"], Role(row["role"]), row["created_at"])


async def insert(
    db: Db,
    channel_id: int,
    email: str,
    password_hash: str,
    role: Role,
    merchant_id: int | None = None,
) -> UserRecord | None:
    """Create a user; None when the e-mail address is taken."""
    row = await db.fetchrow(Q["insert"], channel_id, email, password_hash, role.value, merchant_id)
    return UserRecord.from_row(row) if row else None


async def for_login(db: Db, email: str) -> tuple[int, str] | None:
    row = await db.fetchrow(Q["for_login"], email)
    return (row["id"], row["password_hash"]) if row else None


async def principal_row(db: Db, user_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(Q["principal"], user_id)


async def get_in_subtree(db: Db, user_id: int, ancestor_path: str) -> UserRecord | None:
    row = await db.fetchrow(Q["get_in_subtree"], user_id, ancestor_path)
    return UserRecord.from_row(row) if row else None


async def page_of_channel(db: Db, channel_id: int, after_id: int, limit: int) -> list[UserRecord]:
    rows = await db.fetch(Q["page_of_channel"], channel_id, after_id, limit)
    return [UserRecord.from_row(r) for r in rows]


async def set_password(db: Db, user_id: int, password_hash: str) -> None:
    await db.execute(Q["set_password"], user_id, password_hash)
