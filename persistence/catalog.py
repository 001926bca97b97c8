"""The catalog: suppliers (with their secret sealed) and products with their stock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from domain.catalog import Fulfilment, ProductCategory, ProductDraft
from persistence.queries import queries
from persistence.types import Db

Q = queries("catalog")

SUPPLIER_SKU_UNIQUE = "products_supplier_id_supplier_sku_key"


class DuplicateSupplierSku(Exception):
    """Another product already has this supplier and SKU."""


class RetiredKey(Exception):
    """The data key a secret was sealed with was deleted by a key rotation meanwhile."""


@dataclass(frozen=True, slots=True)
class SupplierRecord:
    """A supplier's public fields; the sealed secret is never read into one."""

    id: int
    name: str
    base_url: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> SupplierRecord:
        return cls(row["id"], row["name"], row["base_url"], row["created_at"])


@dataclass(frozen=True, slots=True)
class StockRecord:
    """A product's codes by state, summed over its pools."""

    product_id: int
    available: int
    reserved: int
    sold: int
    frozen: int

    @classmethod
    def from_row(cls, row: asyncpg.Record, product_id: int) -> StockRecord:
        return cls(product_id, row["available"], row["reserved"], row["sold"], row["frozen"])


@dataclass(frozen=True, slots=True)
class ProductRecord:
    id: int
    name: str
    category: ProductCategory
    face_value: Decimal
    cost_price: Decimal
    base_price: Decimal
    fulfilment: Fulfilment
    supplier: SupplierRecord | None
    supplier_sku: str | None
    validity_days: int | None
    max_uses: int
    on_shelf: bool
    created_at: datetime
    updated_at: datetime
    stock: StockRecord
    # Its codes are redeemed on this platform (GENERATED codes always are).
    redeemable: bool = False

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ProductRecord:
        supplier = None
        if row["supplier_id"] is not None:
            supplier = SupplierRecord(
                row["supplier_id"],
                row["supplier_name"],
                row["supplier_base_url"],
                row["supplier_created_at"],
            )
        return cls(
            id=row["id"],
            name=row["name"],
            category=ProductCategory(row["category"]),
            face_value=row["face_value"],
            cost_price=row["cost_price"],
            base_price=row["base_price"],
            fulfilment=Fulfilment(row["fulfilment"]),
            supplier=supplier,
            supplier_sku=row["supplier_sku"],
            validity_days=row["validity_days"],
            max_uses=row["max_uses"],
            on_shelf=row["on_shelf"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            stock=StockRecord.from_row(row, row["id"]),
            redeemable=row["redeemable"],
        )


def _draft_from_row(row: asyncpg.Record) -> ProductDraft:
    return ProductDraft(
        name=row["name"],
        category=ProductCategory(row["category"]),
        face_value=row["face_value"],
        cost_price=row["cost_price"],
        base_price=row["base_price"],
        fulfilment=Fulfilment(row["fulfilment"]),
        supplier_id=row["supplier_id"],
        supplier_sku=row["supplier_sku"],
        validity_days=row["validity_days"],
        max_uses=row["max_uses"],
        on_shelf=row["on_shelf"],
    )


def _draft_args(draft: ProductDraft) -> tuple[object, ...]:
    return (
        draft.name,
        draft.category.value,
        draft.face_value,
        draft.cost_price,
        draft.base_price,
        draft.fulfilment.value,
        draft.supplier_id,
        draft.supplier_sku,
        draft.validity_days,
        draft.max_uses,
        draft.on_shelf,
    )


# --- suppliers --------------------------------------------------------------------------


async def insert_supplier(
    db: Db, name: str, base_url: str, secret_ciphertext: bytes, key_id: int
) -> SupplierRecord:
    """Raises RetiredKey when ``key_id`` no longer exists: reseal and try again."""
    try:
        row = await db.fetchrow(Q["insert_supplier"], name, base_url, secret_ciphertext, key_id)
    except asyncpg.ForeignKeyViolationError as error:
        raise RetiredKey from error
    assert row is not None
    return SupplierRecord.from_row(row)


async def get_supplier(db: Db, supplier_id: int) -> SupplierRecord | None:
    row = await db.fetchrow(Q["get_supplier"], supplier_id)
    return SupplierRecord.from_row(row) if row else None


@dataclass(frozen=True, slots=True)
class SupplierConnection:
    id: int
    base_url: str
    secret_ciphertext: bytes
    key_id: int

    def __repr__(self) -> str:
        return f"SupplierConnection(id={self.id}, base_url={self.base_url!r})"


async def supplier_connection(db: Db, supplier_id: int) -> SupplierConnection | None:
    row = await db.fetchrow(Q["supplier_connection"], supplier_id)
    return SupplierConnection(**dict(row)) if row else None


async def supplier_id_by_name(db: Db, name: str) -> int | None:
    supplier_id: int | None = await db.fetchval(Q["supplier_id_by_name"], name)
    return supplier_id


async def reconnect_supplier(
    db: Db, supplier_id: int, base_url: str, secret_ciphertext: bytes, key_id: int
) -> None:
    await db.execute(Q["reconnect_supplier"], supplier_id, base_url, secret_ciphertext, key_id)


async def all_suppliers(db: Db) -> list[SupplierRecord]:
    return [SupplierRecord.from_row(r) for r in await db.fetch(Q["all_suppliers"])]


# --- products ---------------------------------------------------------------------------


async def get_product(db: Db, product_id: int, *, viewer_path: str | None) -> ProductRecord | None:
    """The product when the reader sees it, else None.

    ``viewer_path`` is the reader's channel path (``domain.catalog.visibility_path``):
    such a reader sees products on shelf that no channel on its path hides. None reads
    every product (the platform, or the system itself).
    """
    row = await db.fetchrow(Q["get_product"], product_id, viewer_path)
    return ProductRecord.from_row(row) if row else None


async def products_by_ids(
    db: Db, product_ids: Sequence[int], *, viewer_path: str | None
) -> list[ProductRecord]:
    """Those of the products the reader sees (as in ``get_product``), in id order."""
    rows = await db.fetch(Q["products_by_ids"], list(product_ids), viewer_path)
    return [ProductRecord.from_row(r) for r in rows]


async def visible_product_ids(
    db: Db, product_ids: Sequence[int], *, viewer_path: str | None
) -> set[int]:
    """Which of the products exist and the reader sees (as in ``get_product``)."""
    rows = await db.fetch(Q["visible_product_ids"], list(product_ids), viewer_path)
    return {r["id"] for r in rows}


async def hidden_on_path(db: Db, product_id: int, channel_path: str) -> bool:
    """Whether a channel from the root down to the channel at ``channel_path`` hides it."""
    hidden: bool = await db.fetchval(Q["hidden_on_path"], product_id, channel_path)
    return hidden


async def product_page(
    db: Db,
    after_id: int,
    limit: int,
    *,
    viewer_path: str | None,
    category: ProductCategory | None = None,
    on_shelf: bool | None = None,
    name_pattern: str | None = None,
) -> list[ProductRecord]:
    """Products the reader sees (as in ``get_product``) with id above ``after_id``, in id
    order; ``name_pattern`` is for ILIKE."""
    args: tuple[object, ...] = (
        after_id,
        limit,
        viewer_path,
        category.value if category else None,
        on_shelf,
    )
    if name_pattern is None:
        rows = await db.fetch(Q["product_page"], *args)
    else:
        rows = await db.fetch(Q["product_search_page"], *args, name_pattern)
    return [ProductRecord.from_row(r) for r in rows]


async def insert_product(db: Db, draft: ProductDraft) -> ProductRecord:
    """Raises DuplicateSupplierSku when the supplier already has a product with the SKU."""
    try:
        row = await db.fetchrow(Q["insert_product"], *_draft_args(draft))
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == SUPPLIER_SKU_UNIQUE:
            raise DuplicateSupplierSku from error
        raise
    assert row is not None
    return ProductRecord.from_row(row)


async def lock_product(db: Db, product_id: int) -> ProductDraft | None:
    """The product's settable fields, its row locked until the caller's transaction ends."""
    row = await db.fetchrow(Q["lock_product"], product_id)
    return _draft_from_row(row) if row else None


async def update_product(db: Db, product_id: int, draft: ProductDraft) -> ProductRecord | None:
    """Raises DuplicateSupplierSku when the supplier already has a product with the SKU.

    In a transaction the violation aborts it: let the exception leave the transaction.
    """
    try:
        updated = await db.fetchval(Q["update_product"], product_id, *_draft_args(draft))
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == SUPPLIER_SKU_UNIQUE:
            raise DuplicateSupplierSku from error
        raise
    return await get_product(db, updated, viewer_path=None) if updated else None


async def set_redeemable(db: Db, product_id: int, redeemable: bool) -> ProductRecord | None:
    updated = await db.fetchval(Q["set_redeemable"], product_id, redeemable)
    return await get_product(db, updated, viewer_path=None) if updated else None


async def set_on_shelf(db: Db, product_id: int, on_shelf: bool) -> ProductRecord | None:
    updated = await db.fetchval(Q["set_on_shelf"], product_id, on_shelf)
    return await get_product(db, updated, viewer_path=None) if updated else None


async def stock(db: Db, product_id: int) -> StockRecord:
    row = await db.fetchrow(Q["stock"], product_id)
    assert row is not None, "an aggregate always has one row"
    return StockRecord.from_row(row, product_id)


async def product_id_by_sku(db: Db, supplier_id: int, sku: str) -> int | None:
    product_id: int | None = await db.fetchval(Q["product_id_by_sku"], supplier_id, sku)
    return product_id


async def product_id_by_name(db: Db, name: str) -> int | None:
    product_id: int | None = await db.fetchval(Q["product_id_by_name"], name)
    return product_id
