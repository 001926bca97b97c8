"""Rules of a supplier catalog sync: what the supplier's list does to our products.

The sync owns the REALTIME products of its supplier, and only them. For each SKU listed:

- a new SKU becomes a REALTIME product, off shelf ("products found by a supplier sync start
  off shelf"), in the category our taxonomy gives the supplier's category (OTHER when none
  fits), at a base price equal to its cost: the platform sets its own price, then puts it on
  shelf;
- a known SKU takes the supplier's name, face value and cost. Our category is left alone:
  it is our taxonomy, and the platform may have corrected it.

The sync never puts a product on shelf; it only takes products off shelf, each time it finds
that the supplier cannot sell them:

- an unavailable SKU, and a SKU no longer listed (delisted: it keeps its delisting time
  until the supplier lists it again), are off shelf after every sync, so a product that
  the platform put back on shelf meanwhile is taken off again;
- a cost above the base price: a CHECK keeps the base price at or above the cost, so the
  base price is raised to the cost, and the product is taken off shelf, because it would
  otherwise sell at a price the platform never chose, without margin. Its price needs the
  platform's review ("repriced");
- a SKU that is available again, or listed again, stays off shelf: we do not know whether
  it was off shelf because of the supplier or because the platform wanted it so.

A product of the supplier that is not REALTIME (a POOL product whose codes were bought from
it, say) is neither updated nor delisted: its codes are already ours, at the price paid. Its
SKU is taken, so no REALTIME product is created beside it.

Items we cannot store are skipped and reported, never half applied, and the product of a
skipped SKU is left as it is (not delisted: the supplier still lists it). Amounts are whole
cents here, while suppliers may quote tenths of a cent: a cost is rounded up (the platform
never believes it pays less than it does), a face value to the nearest cent.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Protocol

from domain.catalog import (
    CENT,
    MAX_PRODUCT_NAME,
    MONEY_LIMIT,
    ProductCategory,
    clean_sku,
)


class Listing(Protocol):
    """One item of a supplier's catalog, as the supplier adapter read it."""

    @property
    def sku(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def face_value(self) -> Decimal: ...
    @property
    def cost(self) -> Decimal: ...
    @property
    def available(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Stored:
    """A product of the supplier as it is stored, with the fields a sync reads or sets."""

    id: int
    sku: str
    realtime: bool
    name: str
    face_value: Decimal
    cost_price: Decimal
    base_price: Decimal
    on_shelf: bool
    delisted: bool


@dataclass(frozen=True, slots=True)
class NewProduct:
    sku: str
    name: str
    category: ProductCategory
    face_value: Decimal
    cost_price: Decimal
    base_price: Decimal


@dataclass(frozen=True, slots=True)
class Change:
    """A stored product's fields after the sync; only products that differ get one."""

    id: int
    name: str
    face_value: Decimal
    cost_price: Decimal
    base_price: Decimal
    on_shelf: bool
    delisted: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    sku: str
    reason: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    create: tuple[NewProduct, ...]
    change: tuple[Change, ...]
    # Of the changes: products newly delisted, and known products whose cost rose above
    # their base price (see the module's text); the rest of the changes are updates.
    delisted: int
    repriced: int
    skipped: tuple[Skipped, ...]

    @property
    def updated(self) -> int:
        return len(self.change) - self.delisted


# --- categories -------------------------------------------------------------------------

# Words in suppliers' category names, English (whole words) and Chinese (anywhere).
_KEYWORDS: dict[ProductCategory, tuple[str, ...]] = {
    ProductCategory.VIDEO: ("video", "movie", "movies", "film", "tv", "streaming", "视频", "影视"),
    ProductCategory.MUSIC: ("music", "audio", "podcast", "音乐", "听书"),
    ProductCategory.READING: ("reading", "book", "books", "ebook", "novel", "阅读", "读书"),
    ProductCategory.OFFICE: ("office", "software", "cloud", "storage", "办公", "网盘"),
    ProductCategory.TRAVEL: ("travel", "hotel", "flight", "ride", "taxi", "出行", "旅游", "酒店"),
    ProductCategory.FOOD: ("food", "coffee", "tea", "meal", "restaurant", "餐饮", "美食", "咖啡"),
    ProductCategory.SHOPPING: ("shopping", "gift", "mall", "retail", "购物", "礼品卡", "商超"),
    ProductCategory.GAME: ("game", "games", "gaming", "游戏", "点卡"),
    ProductCategory.TELECOM: ("telecom", "mobile", "topup", "phone", "话费", "流量", "通信"),
}
_WORD = re.compile(r"[a-z0-9]+")


def map_category(supplier_category: str) -> ProductCategory:
    """Our category for a supplier's: its own name when it uses ours (any case), else the
    category of the keyword nearest the end ("video_game" is a game: in English and
    Chinese compounds alike the last word names the thing), else OTHER."""
    text = supplier_category.strip().lower()
    if text.upper() in ProductCategory.__members__:
        return ProductCategory(text.upper())
    best: tuple[int, ProductCategory] | None = None
    words = [(m.end(), m.group()) for m in _WORD.finditer(text)]
    for category, keywords in _KEYWORDS.items():
        for keyword in keywords:
            if keyword.isascii():
                ends = [end for end, word in words if word == keyword]
            else:
                start = text.rfind(keyword)
                ends = [start + len(keyword)] if start >= 0 else []
            for end in ends:
                if best is None or end > best[0]:
                    best = (end, category)
    return best[1] if best else ProductCategory.OTHER


# --- one item ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """A catalog item as we can store it."""

    sku: str
    name: str
    category: ProductCategory
    face_value: Decimal
    cost: Decimal
    available: bool


def _cents(amount: Decimal, rounding: str) -> Decimal | None:
    if not amount.is_finite() or amount < 0:
        return None
    cents = amount.quantize(CENT, rounding=rounding)
    return cents + 0 if cents < MONEY_LIMIT else None  # + 0 turns -0.00 into 0.00


def clean_item(listing: Listing) -> Item | Skipped:
    """The item in our terms, or why it cannot be stored."""
    sku, problem = clean_sku(listing.sku)
    if problem or sku != listing.sku:
        # The SKU goes back to the supplier on every order, so it must be kept exactly,
        # and it must pass our own rules, or the product could never be edited.
        return Skipped(listing.sku, "The SKU is empty, has spaces or is too long.")
    name = " ".join(listing.name.split())[:MAX_PRODUCT_NAME].rstrip()
    if not name:
        return Skipped(sku, "The name is empty.")
    face = _cents(listing.face_value, ROUND_HALF_UP)
    cost = _cents(listing.cost, ROUND_CEILING)
    if face is None or cost is None:
        return Skipped(sku, "The face value or cost is negative or too large.")
    return Item(sku, name, map_category(listing.category), face, cost, listing.available)


# --- the whole catalog ------------------------------------------------------------------


def _updated(product: Stored, item: Item) -> tuple[Change, bool]:
    """The product after the sync, and whether its base price was raised to its cost."""
    repriced = item.cost > product.base_price
    return (
        Change(
            id=product.id,
            name=item.name,
            face_value=item.face_value,
            cost_price=item.cost,
            base_price=max(product.base_price, item.cost),
            on_shelf=product.on_shelf and item.available and not repriced,
            delisted=False,
        ),
        repriced,
    )


def _delisted(product: Stored) -> Change:
    return Change(
        id=product.id,
        name=product.name,
        face_value=product.face_value,
        cost_price=product.cost_price,
        base_price=product.base_price,
        on_shelf=False,
        delisted=True,
    )


def _state(product: Stored | Change) -> tuple[object, ...]:
    """What a sync may change of a product: equal states need no write."""
    return (
        product.name,
        product.face_value,
        product.cost_price,
        product.base_price,
        product.on_shelf,
        product.delisted,
    )


def plan_sync(listings: Sequence[Listing], stored: Sequence[Stored]) -> SyncPlan:
    """What a sync does to the supplier's products (``stored``: those with a SKU)."""
    counts = Counter(listing.sku for listing in listings)
    skipped: list[Skipped] = [
        Skipped(sku, "The SKU is listed more than once.") for sku, n in counts.items() if n > 1
    ]
    items: dict[str, Item] = {}
    for listing in listings:
        if counts[listing.sku] > 1:
            continue
        cleaned = clean_item(listing)
        if isinstance(cleaned, Skipped):
            skipped.append(cleaned)
        else:
            items[cleaned.sku] = cleaned

    taken = {product.sku for product in stored}
    create = tuple(
        NewProduct(item.sku, item.name, item.category, item.face_value, item.cost, item.cost)
        for item in items.values()
        if item.sku not in taken
    )
    listed = set(counts)  # skipped SKUs too: the supplier still lists them
    change: list[Change] = []
    delisted = repriced = 0
    for product in stored:
        if not product.realtime:
            continue
        item = items.get(product.sku)
        if item is not None:
            after, raised = _updated(product, item)
        elif product.sku in listed:
            continue  # listed but skipped: left as it is
        else:
            after, raised = _delisted(product), False
        if _state(after) == _state(product):
            continue
        change.append(after)
        repriced += raised
        delisted += after.delisted and not product.delisted
    return SyncPlan(create, tuple(change), delisted, repriced, tuple(skipped))
