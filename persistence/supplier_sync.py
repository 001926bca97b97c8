"""Supplier catalog sync: reading a supplier's products for the sync and writing its plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.supplier_catalog import Change, NewProduct, Stored
from persistence.catalog import SupplierRecord
from persistence.queries import queries
from persistence.types import Db

Q = queries("supplier_sync")


@dataclass(frozen=True, slots=True)
class LockedSupplier:
    # When the catalog applied last was read; None before the first sync.
    synced_at: datetime | None


async def clock(db: Db) -> datetime:
    now: datetime = await db.fetchval(Q["clock"])
    return now


async def lock_supplier(db: Db, supplier_id: int) -> LockedSupplier | None:
    """The supplier, locked against other syncs until the transaction ends; None if none."""
    row = await db.fetchrow(Q["lock_supplier"], supplier_id)
    return LockedSupplier(row["synced_at"]) if row else None


async def lock_products(db: Db, supplier_id: int) -> list[Stored]:
    """The supplier's products with a SKU, locked until the transaction ends."""
    return [Stored(**dict(row)) for row in await db.fetch(Q["lock_products"], supplier_id)]


async def insert_products(db: Db, supplier_id: int, products: Sequence[NewProduct]) -> int:
    """Inserts the products unless their SKU is taken; returns how many were inserted."""
    if not products:
        return 0
    rows = await db.fetch(
        Q["insert_products"],
        supplier_id,
        [p.sku for p in products],
        [p.name for p in products],
        [p.category.value for p in products],
        [p.face_value for p in products],
        [p.cost_price for p in products],
        [p.base_price for p in products],
    )
    return len(rows)


async def update_products(db: Db, changes: Sequence[Change], now: datetime) -> None:
    """Writes each product's fields after the sync; ``now`` dates those found gone now."""
    if not changes:
        return
    await db.execute(
        Q["update_products"],
        now,
        [c.id for c in changes],
        [c.name for c in changes],
        [c.face_value for c in changes],
        [c.cost_price for c in changes],
        [c.base_price for c in changes],
        [c.on_shelf for c in changes],
        [c.delisted for c in changes],
    )


async def mark_synced(db: Db, supplier_id: int, read_at: datetime) -> SupplierRecord:
    row = await db.fetchrow(Q["mark_synced"], supplier_id, read_at)
    assert row is not None, "the supplier's row is locked"
    return SupplierRecord.from_row(row)


async def supplier_ids(db: Db) -> list[int]:
    return [row["id"] for row in await db.fetch(Q["supplier_ids"])]


async def delisted_at(db: Db, product_ids: Sequence[int]) -> dict[int, datetime | None]:
    rows = await db.fetch(Q["delisted_at"], list(product_ids))
    return {row["id"]: row["delisted_at"] for row in rows}


async def synced_at(db: Db, supplier_ids: Sequence[int]) -> dict[int, datetime | None]:
    rows = await db.fetch(Q["synced_at"], list(supplier_ids))
    return {row["id"]: row["synced_at"] for row in rows}
