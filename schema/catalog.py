"""The catalog: suppliers, products and their stock; the catalog's root fields."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from domain.catalog import Fulfilment as DomainFulfilment
from domain.catalog import ProductCategory as DomainProductCategory
from domain.catalog import sees_sourcing
from persistence.catalog import ProductRecord, StockRecord, SupplierRecord
from schema import ids
from schema.context import Info, require_viewer
from schema.errors import UserError
from schema.pagination import Connection

ProductCategory = strawberry.enum(DomainProductCategory, description="What a product is.")
Fulfilment = strawberry.enum(
    DomainFulfilment,
    description=(
        "Where a product's codes come from: POOL, imported codes sold from stock; REALTIME,"
        " bought from the supplier when ordered; GENERATED, issued by the platform."
    ),
)


@strawberry.type(description="An upstream seller of codes. Its shared secret is never shown.")
class Supplier:
    record: strawberry.Private[SupplierRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Supplier", self.record.id)

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field(description="The root of the supplier's HTTP API, without a trailing /.")
    def base_url(self) -> str:
        return self.record.base_url

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(
        description="When the catalog last applied (syncSupplierCatalog) was read; null: never."
    )
    async def synced_at(self, info: Info) -> datetime | None:
        from resolvers.supplier_sync import supplier_synced_at

        return await supplier_synced_at(info, self.record.id)


@strawberry.type(description="A product's codes by state, summed over its pools.")
class StockLevel:
    record: strawberry.Private[StockRecord]

    @strawberry.field
    def product_id(self) -> strawberry.ID:
        return ids.encode("Product", self.record.product_id)

    @strawberry.field
    def available(self) -> int:
        return self.record.available

    @strawberry.field
    def reserved(self) -> int:
        return self.record.reserved

    @strawberry.field
    def sold(self) -> int:
        return self.record.sold

    @strawberry.field
    def frozen(self) -> int:
        return self.record.frozen


@strawberry.type(description="Something channels sell: a gift card, membership or card key.")
class Product:
    record: strawberry.Private[ProductRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Product", self.record.id)

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field
    def category(self) -> ProductCategory:  # type: ignore[valid-type]
        return self.record.category

    @strawberry.field(description="What the code is worth to the buyer, in CNY.")
    def face_value(self) -> Decimal:
        return self.record.face_value

    @strawberry.field(description="What the platform pays for one code. Platform only; else null.")
    def cost_price(self, info: Info) -> Decimal | None:
        return self.record.cost_price if sees_sourcing(require_viewer(info)) else None

    @strawberry.field(description="The platform's price to its agents; never below the cost.")
    def base_price(self) -> Decimal:
        return self.record.base_price

    @strawberry.field(
        description=(
            "What the caller's channel pays for one code, in CNY. The platform buys at the"
            " cost price. Its agents buy at the base price, or at the price the platform"
            " set them; any other channel at the price its parent set it (fixed, or a"
            " markup on the parent's own price), else at the parent's price plus the"
            " parent's default markup. Shown as set even when a later change above left it"
            " below the parent's price: orders are then refused with PRICE_BELOW_COST."
        )
    )
    async def price(self, info: Info) -> Decimal:
        from resolvers.commerce import resolve_product_price

        return await resolve_product_price(info, self.record)

    @strawberry.field
    def fulfilment(self) -> Fulfilment:  # type: ignore[valid-type]
        return self.record.fulfilment

    @strawberry.field(description="Who supplies the codes. Platform only; else null.")
    def supplier(self, info: Info) -> Supplier | None:
        supplier = self.record.supplier
        if supplier is None or not sees_sourcing(require_viewer(info)):
            return None
        return Supplier(record=supplier)

    @strawberry.field(description="The supplier's id of the product. Platform only; else null.")
    def supplier_sku(self, info: Info) -> str | None:
        return self.record.supplier_sku if sees_sourcing(require_viewer(info)) else None

    @strawberry.field(description="Days a code stays valid after sale; null: no limit.")
    def validity_days(self) -> int | None:
        return self.record.validity_days

    @strawberry.field(description="How many times one code may be redeemed.")
    def max_uses(self) -> int:
        return self.record.max_uses

    @strawberry.field(
        description="Whether its codes are redeemed (核销) on this platform; GENERATED codes"
        " always are."
    )
    def redeemable(self) -> bool:
        return self.record.redeemable

    @strawberry.field
    def on_shelf(self) -> bool:
        return self.record.on_shelf

    @strawberry.field(
        description=(
            "Since when its supplier no longer lists it (a catalog sync found it gone); null"
            " while listed. Platform only; else null."
        )
    )
    async def delisted_at(self, info: Info) -> datetime | None:
        from resolvers.supplier_sync import product_delisted_at

        return await product_delisted_at(info, self.record.id)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.record.updated_at

    @strawberry.field
    def stock(self) -> StockLevel:
        return StockLevel(record=self.record.stock)


# --- inputs and payloads ----------------------------------------------------------------


@strawberry.input
class ProductFilter:
    category: ProductCategory | None = None  # type: ignore[valid-type]
    on_shelf: bool | None = None
    search: str | None = strawberry.field(
        default=None, description="Part of the name, case-insensitive."
    )


@strawberry.input
class CreateSupplierInput:
    name: str
    base_url: str
    secret: str = strawberry.field(
        description="The shared HMAC secret. Stored encrypted; never shown again."
    )


@strawberry.type
class CreateSupplierPayload:
    supplier: Supplier | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SyncSupplierCatalogInput:
    supplier_id: strawberry.ID


@strawberry.type(description="An item of a supplier's catalog that the sync left out, and why.")
class SkippedCatalogItem:
    sku: str
    message: str


@strawberry.type
class SyncSupplierCatalogPayload:
    created: int = strawberry.field(default=0, description="New products, off shelf.")
    updated: int = strawberry.field(
        default=0, description="Known products that changed (repriced and relisted included)."
    )
    delisted: int = strawberry.field(
        default=0, description="Products no longer listed by the supplier, now off shelf."
    )
    repriced: int = strawberry.field(
        default=0,
        description=(
            "Of the updated: products whose cost rose above their base price. The base price"
            " was raised to the cost and the product taken off shelf until the platform sets"
            " its price."
        ),
    )
    skipped: list[SkippedCatalogItem] = strawberry.field(
        default_factory=list,
        description="Items that cannot be stored; their products, if any, were left as they were.",
    )
    supplier: Supplier | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateProductInput:
    name: str
    category: ProductCategory  # type: ignore[valid-type]
    face_value: Decimal
    cost_price: Decimal
    base_price: Decimal = strawberry.field(description="At least the cost price.")
    fulfilment: Fulfilment  # type: ignore[valid-type]
    supplier_id: strawberry.ID | None = strawberry.field(
        default=None, description="Required for REALTIME."
    )
    supplier_sku: str | None = strawberry.field(
        default=None, description="Required for REALTIME; unique per supplier."
    )
    validity_days: int | None = None
    max_uses: int = 1
    on_shelf: bool = True


@strawberry.type
class CreateProductPayload:
    product: Product | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(
    description=(
        "The fields to change; those left out keep their value. Null clears supplierId,"
        " supplierSku and validityDays and is refused for the others."
    )
)
class UpdateProductInput:
    product_id: strawberry.ID
    name: str | None = strawberry.UNSET
    category: ProductCategory | None = strawberry.UNSET  # type: ignore[valid-type]
    face_value: Decimal | None = strawberry.UNSET
    cost_price: Decimal | None = strawberry.UNSET
    base_price: Decimal | None = strawberry.UNSET
    fulfilment: Fulfilment | None = strawberry.UNSET  # type: ignore[valid-type]
    supplier_id: strawberry.ID | None = strawberry.UNSET
    supplier_sku: str | None = strawberry.UNSET
    validity_days: int | None = strawberry.UNSET
    max_uses: int | None = strawberry.UNSET
    on_shelf: bool | None = strawberry.UNSET


@strawberry.type
class UpdateProductPayload:
    product: Product | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetProductOnShelfInput:
    product_id: strawberry.ID
    on_shelf: bool


@strawberry.type
class SetProductOnShelfPayload:
    product: Product | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# --- root fields ------------------------------------------------------------------------


@strawberry.type
class CatalogQuery:
    @strawberry.field(
        description=(
            "Products the caller's channel can see, in creation order. The platform sees"
            " every product, other channels those on shelf that no channel from the"
            " platform down to them hides (setChannelProducts)."
        )
    )
    async def products(
        self,
        info: Info,
        filter: ProductFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Product]:
        from resolvers import catalog

        return await catalog.products(info, filter, first, after)

    @strawberry.field(description="A product the caller's channel can see; null otherwise.")
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        from resolvers import catalog

        return await catalog.product(info, id)

    @strawberry.field(description="Upstream suppliers. Platform only: others get FORBIDDEN.")
    async def suppliers(self, info: Info) -> list[Supplier]:
        from resolvers import catalog

        return await catalog.suppliers(info)


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(description="Register an upstream supplier (platform owners, operators).")
    async def create_supplier(
        self, info: Info, input: CreateSupplierInput
    ) -> CreateSupplierPayload:
        from resolvers import catalog

        return await catalog.create_supplier(info, input)

    @strawberry.mutation(
        description=(
            "Read a supplier's catalog and apply it in one transaction (platform owners,"
            " operators): new SKUs become REALTIME products, off shelf; known ones take the"
            " supplier's name, face value, cost and availability; SKUs no longer listed are"
            " delisted. A sync never puts a product on shelf. SUPPLIER_UNAVAILABLE, and"
            " nothing changes, when the catalog cannot be read."
        )
    )
    async def sync_supplier_catalog(
        self, info: Info, input: SyncSupplierCatalogInput
    ) -> SyncSupplierCatalogPayload:
        from resolvers import supplier_sync

        return await supplier_sync.sync_supplier_catalog(info, input)

    @strawberry.mutation(description="Add a product; it is on shelf unless `onShelf: false`.")
    async def create_product(self, info: Info, input: CreateProductInput) -> CreateProductPayload:
        from resolvers import catalog

        return await catalog.create_product(info, input)

    @strawberry.mutation(description="Change some fields of a product.")
    async def update_product(self, info: Info, input: UpdateProductInput) -> UpdateProductPayload:
        from resolvers import catalog

        return await catalog.update_product(info, input)

    @strawberry.mutation(description="Put a product on shelf or take it off.")
    async def set_product_on_shelf(
        self, info: Info, input: SetProductOnShelfInput
    ) -> SetProductOnShelfPayload:
        from resolvers import catalog

        return await catalog.set_product_on_shelf(info, input)
