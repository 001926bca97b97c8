"""Code pools: a product's stock of codes, with counters kept beside the codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from persistence.queries import queries
from persistence.types import Db

Q = queries("pools")


@dataclass(frozen=True, slots=True)
class PoolRecord:
    id: int
    product_id: int
    name: str
    available: int
    reserved: int
    sold: int
    frozen: int
    voided: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> PoolRecord:
        return cls(
            id=row["id"],
            product_id=row["product_id"],
            name=row["name"],
            available=row["available"],
            reserved=row["reserved"],
            sold=row["sold"],
            frozen=row["frozen"],
            voided=row["voided"],
            created_at=row["created_at"],
        )


async def product_exists(db: Db, product_id: int) -> bool:
    return bool(await db.fetchval(Q["product_exists"], product_id))


async def insert(db: Db, product_id: int, name: str) -> PoolRecord | None:
    """The new pool; None when the product does not exist."""
    row = await db.fetchrow(Q["insert"], product_id, name)
    return PoolRecord.from_row(row) if row else None


async def get(db: Db, pool_id: int) -> PoolRecord | None:
    row = await db.fetchrow(Q["get"], pool_id)
    return PoolRecord.from_row(row) if row else None


async def by_product(db: Db, product_id: int) -> list[PoolRecord]:
    rows = await db.fetch(Q["by_product"], product_id)
    return [PoolRecord.from_row(r) for r in rows]


async def add_available(db: Db, pool_id: int, count: int) -> None:
    await db.execute(Q["add_available"], pool_id, count)
