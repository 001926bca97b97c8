"""Supplier catalog sync: one sync of one supplier, the mutation that asks for it, the
background task that runs it for every supplier, and the fields it adds to the schema.

The rules (what is created, changed, delisted, taken off shelf) are in
``domain.supplier_catalog``. Here: the catalog is read first, outside any transaction (a
slow supplier must not hold rows locked), then the plan is made and written in one
transaction, under a lock on the supplier's row, so syncs of one supplier apply one after
another in every process and never create a SKU twice. A sync that read the catalog before
the one applied last would undo newer news: it changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from strawberry.dataloader import DataLoader

from domain.catalog import may_change_catalog, sees_sourcing
from domain.supplier_catalog import Skipped, plan_sync
from integrations.suppliers import SupplierError
from persistence import catalog, supplier_sync
from persistence.catalog import SupplierRecord
from persistence.read_cache import SharedInvalidation
from resolvers.catalog import catalog_forbidden, supplier_not_found
from resolvers.periodic import Periodic
from resolvers.supplier_clients import SupplierClients, UnknownSupplier
from schema import ids
from schema.catalog import (
    SkippedCatalogItem,
    Supplier,
    SyncSupplierCatalogInput,
    SyncSupplierCatalogPayload,
)
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, user_error

log = logging.getLogger(__name__)

# Suppliers read at once by the periodic sync: one slow supplier must not hold up the
# others for its whole timeout, nor a pass open hundreds of connections at once.
CONCURRENT_SYNCS = 4


@dataclass(frozen=True, slots=True)
class SyncResult:
    supplier: SupplierRecord
    created: int
    updated: int
    delisted: int
    repriced: int
    skipped: tuple[Skipped, ...]

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.delisted)


async def sync_supplier(
    db: asyncpg.Pool[Any], suppliers: SupplierClients, supplier_id: int
) -> SyncResult:
    """Reads the supplier's catalog and applies it.

    Raises UnknownSupplier, or SupplierError when the catalog cannot be read; nothing
    changes then.
    """
    adapter = await suppliers.adapter(supplier_id)
    read_at = await supplier_sync.clock(db)
    listings = await adapter.catalog()
    async with db.acquire() as conn, conn.transaction():
        locked = await supplier_sync.lock_supplier(conn, supplier_id)
        if locked is None:
            raise UnknownSupplier(supplier_id)
        if locked.synced_at is not None and locked.synced_at > read_at:
            current = await catalog.get_supplier(conn, supplier_id)
            assert current is not None, "the supplier's row is locked"
            return SyncResult(current, 0, 0, 0, 0, ())
        plan = plan_sync(listings, await supplier_sync.lock_products(conn, supplier_id))
        created = await supplier_sync.insert_products(conn, supplier_id, plan.create)
        await supplier_sync.update_products(conn, plan.change, read_at)
        record = await supplier_sync.mark_synced(conn, supplier_id, read_at)
    return SyncResult(record, created, plan.updated, plan.delisted, plan.repriced, plan.skipped)


# --- the mutation -----------------------------------------------------------------------


async def sync_supplier_catalog(
    info: Info, input: SyncSupplierCatalogInput
) -> SyncSupplierCatalogPayload:
    if not may_change_catalog(require_viewer(info)):
        return SyncSupplierCatalogPayload(user_errors=[catalog_forbidden()])
    supplier_id = ids.decode("Supplier", input.supplier_id)
    if supplier_id is None:
        return SyncSupplierCatalogPayload(user_errors=[supplier_not_found()])
    services = info.context.services
    try:
        result = await sync_supplier(services.db, services.suppliers, supplier_id)
    except UnknownSupplier:
        return SyncSupplierCatalogPayload(user_errors=[supplier_not_found()])
    except SupplierError as error:
        # The adapter's messages name the request and the failure, never a secret.
        message = f"The supplier's catalog could not be read ({error}); nothing was changed."
        return SyncSupplierCatalogPayload(
            user_errors=[user_error(ErrorCode.SUPPLIER_UNAVAILABLE, message)]
        )
    # Every mutation but a few drops the read caches afterwards (schema.extensions), so
    # an order placed next sees the products as this sync left them.
    return SyncSupplierCatalogPayload(
        created=result.created,
        updated=result.updated,
        delisted=result.delisted,
        repriced=result.repriced,
        skipped=[SkippedCatalogItem(sku=s.sku, message=s.reason) for s in result.skipped],
        supplier=Supplier(record=result.supplier),
    )


# --- the periodic sync ------------------------------------------------------------------


class SupplierSync(Periodic):
    """Syncs every supplier's catalog every ``interval`` seconds; 0 never does.

    A supplier that cannot be read is logged and tried again next time. It runs outside
    GraphQL, so it drops the read caches itself.
    """

    name = "supplier-sync"

    def __init__(
        self,
        db: asyncpg.Pool[Any],
        suppliers: SupplierClients,
        invalidation: SharedInvalidation,
        interval: float,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.suppliers = suppliers
        self.invalidation = invalidation
        self._limit = asyncio.Semaphore(CONCURRENT_SYNCS)

    async def run_once(self) -> int:
        """Syncs every supplier once; returns how many were synced."""
        supplier_ids = await supplier_sync.supplier_ids(self.db)
        results = await asyncio.gather(*(self._sync(s) for s in supplier_ids))
        if any(r is not None and r.changed for r in results):
            self.invalidation.invalidate()
        return sum(r is not None for r in results)

    async def _sync(self, supplier_id: int) -> SyncResult | None:
        async with self._limit:
            try:
                result = await sync_supplier(self.db, self.suppliers, supplier_id)
            except (SupplierError, UnknownSupplier) as error:
                log.warning("catalog sync of supplier %d failed: %s", supplier_id, error)
                return None
            except Exception:
                log.exception("catalog sync of supplier %d failed", supplier_id)
                return None
        if result.changed or result.skipped:
            log.info(
                "catalog sync of supplier %d: %d created, %d updated (%d repriced), "
                "%d delisted, %d skipped",
                supplier_id,
                result.created,
                result.updated,
                result.repriced,
                result.delisted,
                len(result.skipped),
            )
        return result


# --- fields -----------------------------------------------------------------------------


async def product_delisted_at(info: Info, product_id: int) -> datetime | None:
    """Platform only: where the platform buys is its own business."""
    if not sees_sourcing(require_viewer(info)):
        return None
    context = info.context
    if context.delisted_loader is None:
        db = context.services.db

        async def load(keys: list[int]) -> list[datetime | None]:
            found = await supplier_sync.delisted_at(db, keys)
            return [found.get(key) for key in keys]

        # No cache: a WebSocket's context lives as long as the connection.
        context.delisted_loader = DataLoader(load_fn=load, cache=False)
    return await context.delisted_loader.load(product_id)


async def supplier_synced_at(info: Info, supplier_id: int) -> datetime | None:
    context = info.context
    if context.synced_loader is None:
        db = context.services.db

        async def load(keys: list[int]) -> list[datetime | None]:
            found = await supplier_sync.synced_at(db, keys)
            return [found.get(key) for key in keys]

        context.synced_loader = DataLoader(load_fn=load, cache=False)
    return await context.synced_loader.load(supplier_id)
