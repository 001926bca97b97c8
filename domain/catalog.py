"""Rules for the catalog: suppliers and products, their money fields and who may change them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import urlsplit

from domain.access import Principal, Role
from domain.channels import Problem

MAX_PRODUCT_NAME = 200
MAX_SKU = 100
MAX_URL = 500
MIN_SECRET = 16  # HMAC keys shorter than this are refused by the supplier client too
MAX_SECRET = 512
MAX_VALIDITY_DAYS = 3650
MAX_USES = 1_000_000
MAX_SEARCH = 200
# numeric(14, 2): twelve digits before the point.
MONEY_LIMIT = Decimal("1000000000000")
CENT = Decimal("0.01")

MONEY_MESSAGE = "Give an amount of 0 or more with at most 2 decimal places."
MONEY_TOO_LARGE = "Give an amount below 1000000000000."


class ProductCategory(enum.StrEnum):
    VIDEO = "VIDEO"
    MUSIC = "MUSIC"
    READING = "READING"
    OFFICE = "OFFICE"
    TRAVEL = "TRAVEL"
    FOOD = "FOOD"
    SHOPPING = "SHOPPING"
    GAME = "GAME"
    TELECOM = "TELECOM"
    OTHER = "OTHER"


class Fulfilment(enum.StrEnum):
    POOL = "POOL"  # codes imported into pools and sold from stock
    REALTIME = "REALTIME"  # bought from the supplier at the moment of the order
    GENERATED = "GENERATED"  # codes the platform issues itself


_CATALOG_ROLES = frozenset({Role.OWNER, Role.OPERATOR})


def may_change_catalog(viewer: Principal) -> bool:
    """Only the platform's owners and operators create suppliers and change products."""
    return viewer.is_platform and viewer.role in _CATALOG_ROLES


def sees_off_shelf(viewer: Principal) -> bool:
    """The platform sees every product; other channels only those on shelf.

    Per-channel visibility (``setChannelProducts``) narrows this further: see
    ``sees_product`` and ``visibility_path``.
    """
    return viewer.is_platform


def sees_product(viewer: Principal, *, on_shelf: bool, hidden_on_path: bool) -> bool:
    """A channel sees a product when it is the platform, or the product is on shelf and
    no channel from the root down to the viewer's own hides it."""
    return viewer.is_platform or (on_shelf and not hidden_on_path)


def visibility_path(viewer: Principal) -> str | None:
    """The channel path whose hidden products (and off-shelf ones) the viewer does not
    see, for the catalog queries; None for the platform, which sees every product."""
    return None if sees_off_shelf(viewer) else viewer.channel_path


def sees_sourcing(viewer: Principal) -> bool:
    """Cost prices and where a product comes from are the platform's business only."""
    return viewer.is_platform


# --- values -----------------------------------------------------------------------------


def clean_money(value: Decimal, field: str) -> tuple[Decimal, Problem | None]:
    """An amount in CNY: finite, not negative, whole cents, fitting numeric(14, 2)."""
    # In this order, so that NaN and huge exponents never reach quantize.
    if not value.is_finite() or value < 0:
        return value, Problem(field, MONEY_MESSAGE)
    if value >= MONEY_LIMIT:
        return value, Problem(field, MONEY_TOO_LARGE)
    cents = value.quantize(CENT, rounding=ROUND_DOWN)
    if cents != value:
        return value, Problem(field, MONEY_MESSAGE)
    return cents + 0, None  # + 0 turns -0.00 into 0.00


def clean_product_name(name: str) -> tuple[str, Problem | None]:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_PRODUCT_NAME:
        return cleaned, Problem("name", f"Give a name of 1 to {MAX_PRODUCT_NAME} characters.")
    return cleaned, None


def clean_sku(sku: str | None) -> tuple[str | None, Problem | None]:
    if sku is None:
        return None, None
    cleaned = sku.strip()
    if not 1 <= len(cleaned) <= MAX_SKU or any(c.isspace() for c in cleaned):
        return cleaned, Problem(
            "supplierSku", f"Give a SKU of 1 to {MAX_SKU} characters without spaces."
        )
    return cleaned, None


def check_validity_days(days: int | None) -> Problem | None:
    if days is not None and not 1 <= days <= MAX_VALIDITY_DAYS:
        return Problem(
            "validityDays", f"Give a validity of 1 to {MAX_VALIDITY_DAYS} days, or none."
        )
    return None


def check_max_uses(uses: int) -> Problem | None:
    if not 1 <= uses <= MAX_USES:
        return Problem("maxUses", f"Give a number of uses from 1 to {MAX_USES}.")
    return None


def clean_base_url(url: str) -> tuple[str, Problem | None]:
    """An http(s) URL with a host, without a trailing slash so ``{base}/catalog`` works."""
    cleaned = url.strip().rstrip("/")
    problem = Problem(
        "baseUrl", f"Give an http:// or https:// URL of at most {MAX_URL} characters."
    )
    if len(cleaned) > MAX_URL or any(c.isspace() for c in cleaned):
        return cleaned, problem
    try:
        parts = urlsplit(cleaned)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return cleaned, problem
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment:
        return cleaned, problem
    if parts.username is not None or parts.password is not None:
        return cleaned, Problem("baseUrl", "Give the URL without credentials in it.")
    return cleaned, None


def check_secret(secret: str) -> Problem | None:
    if not MIN_SECRET <= len(secret) <= MAX_SECRET or secret != secret.strip():
        return Problem(
            "secret",
            f"Give a secret of {MIN_SECRET} to {MAX_SECRET} characters without surrounding spaces.",
        )
    return None


def search_pattern(search: str | None) -> str | None:
    """An ILIKE pattern for "name contains", with the wildcards of the search escaped."""
    if search is None:
        return None
    cleaned = " ".join(search.split())
    if not cleaned:
        return None
    escaped = cleaned.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- products ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductDraft:
    """The fields of a product a caller sets, before or after they are stored."""

    name: str
    category: ProductCategory
    face_value: Decimal
    cost_price: Decimal
    base_price: Decimal
    fulfilment: Fulfilment
    supplier_id: int | None
    supplier_sku: str | None
    validity_days: int | None
    max_uses: int
    on_shelf: bool


# Fields of a draft that an update may set to null, and their names in the API.
CLEARABLE = frozenset({"supplier_id", "supplier_sku", "validity_days"})
API_NAMES = {
    "name": "name",
    "category": "category",
    "face_value": "faceValue",
    "cost_price": "costPrice",
    "base_price": "basePrice",
    "fulfilment": "fulfilment",
    "supplier_id": "supplierId",
    "supplier_sku": "supplierSku",
    "validity_days": "validityDays",
    "max_uses": "maxUses",
    "on_shelf": "onShelf",
}
assert set(API_NAMES) == {f.name for f in fields(ProductDraft)}


def clean_product(draft: ProductDraft) -> tuple[ProductDraft, list[Problem]]:
    """The draft made canonical, and the problems of its fields (INVALID_INPUT).

    A price below cost is not among them: see ``price_below_cost``.
    """
    name, name_problem = clean_product_name(draft.name)
    face, face_problem = clean_money(draft.face_value, "faceValue")
    cost, cost_problem = clean_money(draft.cost_price, "costPrice")
    base, base_problem = clean_money(draft.base_price, "basePrice")
    sku, sku_problem = clean_sku(draft.supplier_sku)
    problems = [
        p
        for p in (
            name_problem,
            face_problem,
            cost_problem,
            base_problem,
            sku_problem,
            check_validity_days(draft.validity_days),
            check_max_uses(draft.max_uses),
        )
        if p
    ]
    if draft.fulfilment is Fulfilment.REALTIME:
        if draft.supplier_id is None:
            problems.append(Problem("supplierId", "A REALTIME product needs a supplier."))
        if sku is None:
            problems.append(Problem("supplierSku", "A REALTIME product needs the supplier's SKU."))
    elif sku is not None and draft.supplier_id is None:
        problems.append(Problem("supplierSku", "A supplier SKU needs a supplier."))
    cleaned = replace(
        draft, name=name, face_value=face, cost_price=cost, base_price=base, supplier_sku=sku
    )
    return cleaned, problems


def price_below_cost(draft: ProductDraft) -> Problem | None:
    """The base price, the platform's lowest selling price, must cover the cost price."""
    if draft.base_price < draft.cost_price:
        return Problem(
            "basePrice",
            f"The base price {draft.base_price} is below the cost price {draft.cost_price}.",
        )
    return None


def apply_changes(
    current: ProductDraft, changes: Mapping[str, Any]
) -> tuple[ProductDraft, list[Problem]]:
    """``current`` with the fields an update names; a null clears only what may be empty.

    ``changes`` maps draft field names to new values; absent fields keep their value.
    """
    problems = [
        Problem(API_NAMES[name], f"{API_NAMES[name]} cannot be null; leave it out to keep it.")
        for name, value in changes.items()
        if value is None and name not in CLEARABLE
    ]
    given = {k: v for k, v in changes.items() if v is not None or k in CLEARABLE}
    return replace(current, **given), problems
