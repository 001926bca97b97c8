"""The catalog: reading products by visibility, and the platform changing suppliers and products.

Refusals come in a fixed order: a caller who may not change the catalog learns nothing
else (not even whether a product exists); then not-found ids, then input problems.
"""

from __future__ import annotations

from typing import Any

from strawberry import UNSET

from domain.access import Principal
from domain.catalog import (
    API_NAMES,
    MAX_SEARCH,
    ProductDraft,
    apply_changes,
    check_secret,
    clean_base_url,
    clean_product,
    may_change_catalog,
    price_below_cost,
    search_pattern,
    visibility_path,
)
from domain.channels import Problem, clean_name
from integrations.targets import TargetRefused, TargetUnresolved, check_target
from persistence import catalog
from persistence.catalog import DuplicateSupplierSku, ProductRecord, RetiredKey
from resolvers.channels import invalid
from schema import ids
from schema.catalog import (
    CreateProductInput,
    CreateProductPayload,
    CreateSupplierInput,
    CreateSupplierPayload,
    Product,
    ProductFilter,
    SetProductOnShelfInput,
    SetProductOnShelfPayload,
    Supplier,
    UpdateProductInput,
    UpdateProductPayload,
)
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, UserError, bad_request, forbidden_request, user_error
from schema.pagination import Connection, connection, window

SUPPLIER_SECRET_AAD = b"supplier-secret"
SEAL_ATTEMPTS = 3
# Stands in for a supplier id that names no supplier, so that the draft's own rules
# (REALTIME needs a supplier) do not report it a second time.
_UNKNOWN_SUPPLIER = 0


def catalog_forbidden() -> UserError:
    return user_error(
        ErrorCode.FORBIDDEN, "Only the platform's owners and operators may change the catalog."
    )


def product_not_found(field: str = "productId") -> UserError:
    return user_error(ErrorCode.NOT_FOUND, "No such product.", field)


def supplier_not_found() -> UserError:
    return user_error(ErrorCode.NOT_FOUND, "No such supplier.", "supplierId")


def duplicate_sku(sku: str | None) -> UserError:
    return user_error(
        ErrorCode.INVALID_INPUT,
        f"This supplier already has a product with SKU {sku}.",
        "supplierSku",
    )


async def find_product(info: Info, viewer: Principal, product_id: str) -> ProductRecord | None:
    """The product an id names when the caller's channel can see it; None otherwise.

    Hidden and non-existent products look the same.
    """
    key = ids.decode("Product", product_id)
    if key is None:
        return None
    return await catalog.get_product(
        info.context.services.db, key, viewer_path=visibility_path(viewer)
    )


# --- queries ----------------------------------------------------------------------------


async def products(
    info: Info, filter: ProductFilter | None, first: int | None, after: str | None
) -> Connection[Product]:
    viewer = require_viewer(info)
    win = window(first, after, info.context.services.settings.max_page_size)
    search = filter.search if filter else None
    if search is not None and len(search) > MAX_SEARCH:
        raise bad_request(f"`search` has at most {MAX_SEARCH} characters.")
    rows = await catalog.product_page(
        info.context.services.db,
        win.after_key,
        win.limit,
        viewer_path=visibility_path(viewer),
        category=filter.category if filter else None,
        on_shelf=filter.on_shelf if filter else None,
        name_pattern=search_pattern(search),
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: Product(record=r))


async def product(info: Info, id: str) -> Product | None:
    record = await find_product(info, require_viewer(info), id)
    return Product(record=record) if record else None


async def suppliers(info: Info) -> list[Supplier]:
    """Platform only. Other channels get a FORBIDDEN error rather than an empty list, so
    that an integration calling the wrong endpoint is told so instead of seeing nothing."""
    if not require_viewer(info).is_platform:
        raise forbidden_request("Only the platform sees suppliers.")
    return [Supplier(record=r) for r in await catalog.all_suppliers(info.context.services.db)]


# --- mutations --------------------------------------------------------------------------


async def create_supplier(info: Info, input: CreateSupplierInput) -> CreateSupplierPayload:
    if not may_change_catalog(require_viewer(info)):
        return CreateSupplierPayload(user_errors=[catalog_forbidden()])
    name, name_problem = clean_name(input.name)
    base_url, url_problem = clean_base_url(input.base_url)
    problems = [p for p in (name_problem, url_problem, check_secret(input.secret)) if p]
    services = info.context.services
    if not url_problem:
        try:
            await check_target(base_url, allow_private=services.settings.allow_private_targets)
        except TargetUnresolved:
            pass  # a name that does not resolve now may later; each call checks again
        except TargetRefused as refused:
            problems.append(Problem("baseUrl", f"This address is not allowed: {refused.reason}."))
    if problems:
        return CreateSupplierPayload(user_errors=[invalid(p) for p in problems])

    for attempt in range(1, SEAL_ATTEMPTS + 1):
        # Another process may have rotated the keys: seal with the key active now. A
        # rotation that deletes that key before the row is in makes the insert fail;
        # then seal again under the new key.
        await services.keyring.reload(services.db)
        key_id, sealed = services.keyring.encrypt(input.secret, aad=SUPPLIER_SECRET_AAD)
        try:
            record = await catalog.insert_supplier(services.db, name, base_url, sealed, key_id)
        except RetiredKey:
            if attempt == SEAL_ATTEMPTS:
                raise
            continue
        return CreateSupplierPayload(supplier=Supplier(record=record))
    raise AssertionError("unreachable")


async def _supplier_key(info: Info, supplier_id: str | None) -> tuple[int | None, bool]:
    """The supplier an input names, and whether it exists (True when none is named)."""
    if supplier_id is None:
        return None, True
    key = ids.decode("Supplier", supplier_id)
    if key is None or await catalog.get_supplier(info.context.services.db, key) is None:
        return _UNKNOWN_SUPPLIER, False
    return key, True


def _check(draft: ProductDraft) -> tuple[ProductDraft, list[UserError]]:
    """The draft made canonical, and its problems: invalid fields, then a price below cost."""
    cleaned, problems = clean_product(draft)
    errors = [invalid(p) for p in problems]
    # Comparing prices is only meaningful when both are valid amounts.
    if not any(p.field in ("costPrice", "basePrice") for p in problems):
        below = price_below_cost(cleaned)
        if below:
            errors.append(user_error(ErrorCode.PRICE_BELOW_COST, below.message, below.field))
    return cleaned, errors


async def create_product(info: Info, input: CreateProductInput) -> CreateProductPayload:
    if not may_change_catalog(require_viewer(info)):
        return CreateProductPayload(user_errors=[catalog_forbidden()])
    supplier_id, supplier_found = await _supplier_key(info, input.supplier_id)
    draft, errors = _check(
        ProductDraft(
            name=input.name,
            category=input.category,
            face_value=input.face_value,
            cost_price=input.cost_price,
            base_price=input.base_price,
            fulfilment=input.fulfilment,
            supplier_id=supplier_id,
            supplier_sku=input.supplier_sku,
            validity_days=input.validity_days,
            max_uses=input.max_uses,
            on_shelf=input.on_shelf,
        )
    )
    if not supplier_found:
        errors.insert(0, supplier_not_found())
    if errors:
        return CreateProductPayload(user_errors=errors)
    try:
        record = await catalog.insert_product(info.context.services.db, draft)
    except DuplicateSupplierSku:
        return CreateProductPayload(user_errors=[duplicate_sku(draft.supplier_sku)])
    return CreateProductPayload(product=Product(record=record))


async def update_product(info: Info, input: UpdateProductInput) -> UpdateProductPayload:
    if not may_change_catalog(require_viewer(info)):
        return UpdateProductPayload(user_errors=[catalog_forbidden()])
    product_id = ids.decode("Product", input.product_id)
    if product_id is None:
        return UpdateProductPayload(user_errors=[product_not_found()])

    changes: dict[str, Any] = {
        name: getattr(input, name) for name in API_NAMES if getattr(input, name) is not UNSET
    }
    supplier_found = True
    if changes.get("supplier_id") is not None:
        changes["supplier_id"], supplier_found = await _supplier_key(info, changes["supplier_id"])

    db = info.context.services.db
    try:
        # The row lock makes concurrent updates apply one after another, each checked
        # against the row as the previous one left it.
        async with db.acquire() as conn, conn.transaction():
            current = await catalog.lock_product(conn, product_id)
            if current is None:
                return UpdateProductPayload(user_errors=[product_not_found()])
            merged, null_problems = apply_changes(current, changes)
            draft, problems = _check(merged)
            errors = [] if supplier_found else [supplier_not_found()]
            errors += [invalid(p) for p in null_problems] + problems
            if errors:
                return UpdateProductPayload(user_errors=errors)
            if draft == current:
                record = await catalog.get_product(conn, product_id, viewer_path=None)
            else:
                record = await catalog.update_product(conn, product_id, draft)
    except DuplicateSupplierSku:
        return UpdateProductPayload(user_errors=[duplicate_sku(draft.supplier_sku)])
    assert record is not None, "the row is locked"
    return UpdateProductPayload(product=Product(record=record))


async def set_product_on_shelf(
    info: Info, input: SetProductOnShelfInput
) -> SetProductOnShelfPayload:
    if not may_change_catalog(require_viewer(info)):
        return SetProductOnShelfPayload(user_errors=[catalog_forbidden()])
    product_id = ids.decode("Product", input.product_id)
    record = (
        await catalog.set_on_shelf(info.context.services.db, product_id, input.on_shelf)
        if product_id is not None
        else None
    )
    if record is None:
        return SetProductOnShelfPayload(user_errors=[product_not_found()])
    return SetProductOnShelfPayload(product=Product(record=record))
