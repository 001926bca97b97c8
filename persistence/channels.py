"""The channel tree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from persistence.queries import queries
from persistence.types import Db

Q = queries("channels")


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    id: int
    parent_id: int | None
    name: str
    path: str
    regions: list[str]
    customer_groups: list[str]
    created_at: datetime
    # What the channel adds to its own price for children it has set no price for.
    default_markup_percent: Decimal = Decimal(0)

    @property
    def level(self) -> int:
        return self.path.count(".")

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ChannelRecord:
        return cls(
            id=row["id"],
            parent_id=row["parent_id"],
            name=row["name"],
            path=row["path"],
            regions=list(row["regions"]),
            customer_groups=list(row["customer_groups"]),
            created_at=row["created_at"],
            default_markup_percent=row["default_markup_percent"],
        )


async def get_in_subtree(db: Db, channel_id: int, ancestor_path: str) -> ChannelRecord | None:
    row = await db.fetchrow(Q["get_in_subtree"], channel_id, ancestor_path)
    return ChannelRecord.from_row(row) if row else None


async def insert_child(
    db: Db, parent_id: int, name: str, regions: list[str], customer_groups: list[str]
) -> ChannelRecord:
    row = await db.fetchrow(Q["insert_child"], parent_id, name, regions, customer_groups)
    assert row is not None, "the parent was checked by the caller"
    return ChannelRecord.from_row(row)


async def children_page(db: Db, parent_id: int, after_id: int, limit: int) -> list[ChannelRecord]:
    rows = await db.fetch(Q["children_page"], parent_id, after_id, limit)
    return [ChannelRecord.from_row(r) for r in rows]


async def chain_between(db: Db, path: str, ancestor_path: str) -> list[ChannelRecord]:
    rows = await db.fetch(Q["chain_between"], path, ancestor_path)
    return [ChannelRecord.from_row(r) for r in rows]


async def root(db: Db) -> ChannelRecord:
    row = await db.fetchrow(Q["root"])
    assert row is not None, "migration 0001 creates the root"
    return ChannelRecord.from_row(row)


async def rename_root(db: Db, name: str) -> None:
    await db.execute(Q["rename_root"], name)


async def child_by_name(db: Db, parent_id: int, name: str) -> ChannelRecord | None:
    row = await db.fetchrow(Q["child_by_name"], parent_id, name)
    return ChannelRecord.from_row(row) if row else None
