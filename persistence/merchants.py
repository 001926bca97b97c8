"""Merchants that redeem codes (核销), and the channels they are authorised for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from persistence.queries import queries
from persistence.types import Db

Q = queries("merchants")


@dataclass(frozen=True, slots=True)
class MerchantRecord:
    id: int
    channel_id: int
    name: str
    regions: list[str]
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> MerchantRecord:
        return cls(
            row["id"], row["channel_id"], row["name"], list(row["regions"]), row["created_at"]
        )


async def insert(db: Db, channel_id: int, name: str, regions: list[str]) -> MerchantRecord:
    row = await db.fetchrow(Q["insert"], channel_id, name, regions)
    assert row is not None, "an INSERT … RETURNING returns its row"
    return MerchantRecord.from_row(row)


async def get(db: Db, merchant_id: int) -> MerchantRecord | None:
    row = await db.fetchrow(Q["get"], merchant_id)
    return MerchantRecord.from_row(row) if row else None


async def get_in_subtree(db: Db, merchant_id: int, ancestor_path: str) -> MerchantRecord | None:
    row = await db.fetchrow(Q["get_in_subtree"], merchant_id, ancestor_path)
    return MerchantRecord.from_row(row) if row else None


async def page(db: Db, ancestor_path: str, after: int, limit: int) -> list[MerchantRecord]:
    rows = await db.fetch(Q["page"], ancestor_path, after, limit)
    return [MerchantRecord.from_row(r) for r in rows]


async def set_channels(db: Db, merchant_id: int, channel_ids: Sequence[int]) -> None:
    """Replace the channels the merchant is authorised for (call in a transaction)."""
    await db.execute(Q["clear_channels"], merchant_id)
    await db.execute(Q["add_channels"], merchant_id, list(channel_ids))


async def channels_of(db: Db, merchant_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {m: [] for m in merchant_ids}
    for row in await db.fetch(Q["channels_of"], list(merchant_ids)):
        found[row["merchant_id"]].append(row["channel_id"])
    return found


async def authorises(db: Db, merchant_id: int, channel_path: str) -> bool:
    allowed: bool = await db.fetchval(Q["authorises"], merchant_id, channel_path)
    return allowed
