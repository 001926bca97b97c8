"""Supplier catalog sync through GraphQL, against the supplier simulator in its own process:
products created off shelf, updated, repriced, delisted and relisted; concurrent syncs;
refusals that change nothing; and the periodic sync on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from resolvers.supplier_sync import SupplierSync
from server import Services
from settings import Settings
from supplier_sim import DEFAULT_CATALOG
from tests.conftest import Api, LiveServer, Node, eventually
from tests.e2e.test_auth import snapshot
from tests.e2e.test_catalog import (
    CREATE_SUPPLIER,
    FORBIDDEN,
    NO_SUCH_SUPPLIER,
    SET_ON_SHELF,
    UPDATE_PRODUCT,
    issue_key,
    opaque,
)
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input
from tests.simulator import SECRET, Simulator, admin, simulator

SYNC = """
mutation($input: SyncSupplierCatalogInput!) {
  syncSupplierCatalog(input: $input) {
    created updated delisted repriced
    skipped { sku message }
    supplier { id name syncedAt }
    userErrors { field code message }
  }
}
"""

SYNCED = """
{ products(first: 100) { edges { node {
    id name category faceValue costPrice basePrice fulfilment supplierSku onShelf delistedAt
} } } }
"""

SUPPLIERS = "{ suppliers { id syncedAt } }"

# The simulator's catalog as it serves it.
CATALOG: list[dict[str, Any]] = [
    {k: v for k, v in item.items() if k != "withPassword"} for item in DEFAULT_CATALOG
]
CATEGORIES = {
    "VIDEO-VIP-1M": "VIDEO",
    "MUSIC-VIP-1M": "MUSIC",
    "GAME-100": "GAME",
    "GIFT-200": "SHOPPING",
    "COFFEE-COUPON": "OTHER",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"allow_private_targets": True, "supplier_timeout_seconds": 2}
    )


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    with simulator(tmp_path) as running:
        yield running


def listed(like: str, **changes: Any) -> dict[str, Any]:
    """The simulator's item of SKU ``like``, with ``changes``."""
    item = next(item for item in CATALOG if item["sku"] == like)
    return item | changes


async def set_catalog(sim: Simulator, items: list[dict[str, Any]]) -> None:
    assert await admin(sim, "POST", "/admin/catalog", {"items": items}) == {"items": len(items)}


async def add_supplier(api: Api, token: str, sim: Simulator) -> str:
    created = await api.data(
        CREATE_SUPPLIER,
        {"input": {"name": "Simulator", "baseUrl": sim.url, "secret": SECRET.decode()}},
        token=token,
    )
    assert created["createSupplier"]["userErrors"] == []
    supplier_id: str = created["createSupplier"]["supplier"]["id"]
    return supplier_id


async def sync(api: Api, token: str, supplier_id: str) -> dict[str, Any]:
    answer = await api.data(SYNC, {"input": {"supplierId": supplier_id}}, token=token)
    payload: dict[str, Any] = answer["syncSupplierCatalog"]
    return payload


def counts(payload: dict[str, Any]) -> tuple[int, int, int, int]:
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["created"], payload["updated"], payload["delisted"], payload["repriced"]


async def by_sku(api: Api, token: str) -> dict[str, dict[str, Any]]:
    """The platform's products with a supplier SKU, by SKU."""
    edges = (await api.data(SYNCED, token=token))["products"]["edges"]
    return {e["node"]["supplierSku"]: e["node"] for e in edges if e["node"]["supplierSku"]}


async def product_rows(db: asyncpg.Connection[Any]) -> dict[str, dict[str, Any]]:
    rows = await db.fetch(
        """SELECT supplier_sku, name, fulfilment, face_value, cost_price, base_price, on_shelf,
                  delisted_at IS NOT NULL AS delisted
           FROM products ORDER BY id"""
    )
    return {r["supplier_sku"]: {k: v for k, v in r.items() if k != "supplier_sku"} for r in rows}


def row(
    name: str, face: str, cost: str, base: str, *, on_shelf: bool = False, delisted: bool = False
) -> dict[str, Any]:
    """A REALTIME product's row as product_rows reads it."""
    return {
        "name": name,
        "fulfilment": "REALTIME",
        "face_value": Decimal(face),
        "cost_price": Decimal(cost),
        "base_price": Decimal(base),
        "on_shelf": on_shelf,
        "delisted": delisted,
    }


# --- the first sync ---------------------------------------------------------------------


async def test_a_first_sync_creates_the_catalog_off_shelf(
    api: Api, tree: dict[str, Node], sim: Simulator
) -> None:
    # Given a supplier registered through the API, never synced
    platform = tree["root"].key
    supplier_id = await add_supplier(api, platform, sim)
    assert (await api.data(SUPPLIERS, token=platform))["suppliers"] == [
        {"id": supplier_id, "syncedAt": None}
    ]

    # When the platform syncs it
    payload = await sync(api, platform, supplier_id)

    # Then every item became a REALTIME product, off shelf, at its cost
    assert counts(payload) == (5, 0, 0, 0)
    assert payload["skipped"] == []
    assert payload["supplier"]["id"] == supplier_id
    synced_at = datetime.fromisoformat(payload["supplier"]["syncedAt"])
    products = await by_sku(api, platform)
    assert {sku: {k: v for k, v in p.items() if k != "id"} for sku, p in products.items()} == {
        item["sku"]: {
            "name": item["name"],
            "category": CATEGORIES[item["sku"]],
            "faceValue": item["faceValue"],
            "costPrice": item["cost"],
            "basePrice": item["cost"],
            "fulfilment": "REALTIME",
            "supplierSku": item["sku"],
            "onShelf": False,
            "delistedAt": None,
        }
        for item in CATALOG
    }
    # And agents see none of them
    assert (await api.data(SYNCED, token=tree["A"].key))["products"]["edges"] == []
    # And the supplier shows when it was synced
    assert (await api.data(SUPPLIERS, token=platform))["suppliers"] == [
        {"id": supplier_id, "syncedAt": payload["supplier"]["syncedAt"]}
    ]

    # When it is synced again with nothing changed upstream
    again = await sync(api, platform, supplier_id)

    # Then nothing changes but the time of the sync
    assert counts(again) == (0, 0, 0, 0)
    assert await by_sku(api, platform) == products
    assert datetime.fromisoformat(again["supplier"]["syncedAt"]) > synced_at


# --- a changed catalog ------------------------------------------------------------------


async def test_a_changed_catalog_updates_reprices_delists_and_adds(
    api: Api, tree: dict[str, Node], sim: Simulator, db: asyncpg.Connection[Any]
) -> None:
    # Given a synced supplier whose products the platform priced and put on shelf
    platform = tree["root"].key
    supplier_id = await add_supplier(api, platform, sim)
    assert counts(await sync(api, platform, supplier_id)) == (5, 0, 0, 0)
    products = await by_sku(api, platform)
    for product in products.values():
        shelved = await api.data(
            SET_ON_SHELF, {"input": {"productId": product["id"], "onShelf": True}}, token=platform
        )
        assert shelved["setProductOnShelf"]["userErrors"] == []
    priced = await api.data(
        UPDATE_PRODUCT,
        {"input": {"productId": products["VIDEO-VIP-1M"]["id"], "basePrice": "28.00"}},
        token=platform,
    )
    assert priced["updateProduct"]["userErrors"] == []

    # When the supplier raises one cost within the base price and one above it, runs out of
    # one item, stops selling another, starts a new one and lists one we cannot store
    await set_catalog(
        sim,
        [
            listed("VIDEO-VIP-1M", cost="26.10", name="Video VIP, 30 days"),
            listed("MUSIC-VIP-1M", available=False),
            listed("GIFT-200", cost="197.005"),
            listed("COFFEE-COUPON"),
            listed("GAME-100", sku="BOOK-1Y", name="E-book year", category="ebook"),
            listed("COFFEE-COUPON", sku="BAD SKU"),
        ],
    )
    payload = await sync(api, platform, supplier_id)

    # Then the counts say so
    assert counts(payload) == (1, 3, 1, 1)
    assert payload["skipped"] == [
        {"sku": "BAD SKU", "message": "The SKU is empty, has spaces or is too long."}
    ]

    # And the database agrees, row by row: the cost quoted to a tenth of a cent is rounded
    # up, and the base price it passed follows it
    rows = await product_rows(db)
    assert rows == {
        "VIDEO-VIP-1M": row("Video VIP, 30 days", "30.00", "26.10", "28.00", on_shelf=True),
        "MUSIC-VIP-1M": row("Music membership, 1 month", "15.00", "12.30", "12.30"),
        "GAME-100": row("Game card, 100 points", "100.00", "93.00", "93.00", delisted=True),
        "GIFT-200": row("Shopping gift card, 200", "200.00", "197.01", "197.01"),
        "COFFEE-COUPON": row("Coffee coupon, any size", "35.00", "18.90", "18.90", on_shelf=True),
        "BOOK-1Y": row("E-book year", "100.00", "93.00", "93.00"),
    }
    # And the API shows the delisting to the platform
    after = await by_sku(api, platform)
    assert after["GAME-100"]["delistedAt"] is not None
    assert after["BOOK-1Y"]["category"] == "READING"

    # When the supplier lists the lost item again and has the other back in stock
    await set_catalog(
        sim,
        [
            listed("VIDEO-VIP-1M", cost="26.10", name="Video VIP, 30 days"),
            listed("MUSIC-VIP-1M"),
            listed("GIFT-200", cost="197.005"),
            listed("COFFEE-COUPON"),
            listed("GAME-100", sku="BOOK-1Y", name="E-book year", category="ebook"),
            listed("GAME-100"),
        ],
    )
    relisted = await sync(api, platform, supplier_id)

    # Then the lost item is relisted, and both stay off shelf until the platform says so
    assert counts(relisted) == (0, 1, 0, 0)
    rows_after = await product_rows(db)
    assert rows_after == rows | {
        "GAME-100": row("Game card, 100 points", "100.00", "93.00", "93.00")
    }


async def test_concurrent_syncs_create_each_sku_once(
    api: Api, tree: dict[str, Node], sim: Simulator, db: asyncpg.Connection[Any]
) -> None:
    # Given a supplier never synced
    platform = tree["root"].key
    supplier_id = await add_supplier(api, platform, sim)

    # When it is synced six times at once
    payloads = await asyncio.gather(*(sync(api, platform, supplier_id) for _ in range(6)))

    # Then its five items were created once between them, and exist once
    assert sum(counts(p)[0] for p in payloads) == 5
    assert all(counts(p)[1:] == (0, 0, 0) for p in payloads)
    skus = [r["supplier_sku"] for r in await db.fetch("SELECT supplier_sku FROM products")]
    assert sorted(skus) == sorted(item["sku"] for item in CATALOG)


# --- refusals ---------------------------------------------------------------------------


async def test_only_the_platforms_catalog_managers_may_sync(
    api: Api, tree: dict[str, Node], sim: Simulator, db: asyncpg.Connection[Any]
) -> None:
    # Given a supplier, and the state of every table
    platform = tree["root"].key
    supplier_id = await add_supplier(api, platform, sim)
    finance = await issue_key(api, platform, "FINANCE")
    before = await snapshot(db)

    # When agents or a platform finance key ask for a sync
    for token in (tree["A"].key, tree["A11"].key, finance):
        payload = await sync(api, token, supplier_id)

        # Then they are refused, with nothing else told
        assert payload == {
            "created": 0,
            "updated": 0,
            "delisted": 0,
            "repriced": 0,
            "skipped": [],
            "supplier": None,
            "userErrors": [FORBIDDEN],
        }

    # When the platform names a supplier that does not exist, or something else
    for wrong in (opaque("Supplier", 999), opaque("Product", 1), "nonsense"):
        payload = await sync(api, platform, wrong)

        # Then it is not found
        assert payload["supplier"] is None
        assert payload["userErrors"] == [NO_SUCH_SUPPLIER]

    # And nothing changed anywhere
    assert await snapshot(db) == before

    # And an operator may sync
    operator = await issue_key(api, platform, "OPERATOR")
    assert counts(await sync(api, operator, supplier_id)) == (5, 0, 0, 0)


async def test_a_supplier_that_cannot_be_read_changes_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    platform = tree["root"].key
    with simulator(tmp_path) as sim:
        # Given a synced supplier
        supplier_id = await add_supplier(api, platform, sim)
        assert counts(await sync(api, platform, supplier_id)) == (5, 0, 0, 0)
        before = await snapshot(db)

        # When its catalog comes back malformed (an item without a cost)
        await set_catalog(sim, [{k: v for k, v in CATALOG[0].items() if k != "cost"}])
        malformed = await sync(api, platform, supplier_id)

        # Then the sync is refused and nothing is delisted
        assert malformed["userErrors"] == [
            {
                "field": None,
                "code": "SUPPLIER_UNAVAILABLE",
                "message": "The supplier's catalog could not be read (malformed catalog: cost"
                " must be a str); nothing was changed.",
            }
        ]
        assert await snapshot(db) == before

    # When the supplier is down
    down = await sync(api, platform, supplier_id)

    # Then the sync is refused with the reason, and nothing changed anywhere
    assert down == {
        "created": 0,
        "updated": 0,
        "delisted": 0,
        "repriced": 0,
        "skipped": [],
        "supplier": None,
        "userErrors": [
            {
                "field": None,
                "code": "SUPPLIER_UNAVAILABLE",
                "message": "The supplier's catalog could not be read (GET /catalog:"
                " ConnectError); nothing was changed.",
            }
        ],
    }
    assert await snapshot(db) == before


# --- the periodic sync ------------------------------------------------------------------


async def test_the_periodic_sync_keeps_the_catalog_and_the_orders_in_step(
    api: Api, server: LiveServer, tree: dict[str, Node], sim: Simulator
) -> None:
    # Given a supplier registered but never synced, and the server's periodic sync running
    # every 0.2 s
    platform = tree["root"].key
    supplier_id = await add_supplier(api, platform, sim)
    services: Services = server.app.state.services
    periodic = SupplierSync(services.db, services.suppliers, services.invalidation, 0.2)
    await periodic.start()
    try:

        async def all_created() -> bool:
            return len(await by_sku(api, platform)) == len(CATALOG)

        # Then the catalog appears by itself
        assert await eventually(all_created)
        suppliers = (await api.data(SUPPLIERS, token=platform))["suppliers"]
        assert suppliers[0]["id"] == supplier_id
        assert suppliers[0]["syncedAt"] is not None

        # Given agent A has bought a product the platform put on shelf (its offer is cached)
        video = (await by_sku(api, platform))["VIDEO-VIP-1M"]["id"]
        await api.data(
            SET_ON_SHELF, {"input": {"productId": video, "onShelf": True}}, token=platform
        )
        await funded(api, platform, tree["A"].id, "100.00", "bank-1")
        first = await api.data(PLACE, order_input(video, "sync-1"), token=tree["A"].key)
        assert first["placeOrder"]["order"]["status"] == "PAID"

        # When the supplier runs out of it
        await set_catalog(sim, [listed("VIDEO-VIP-1M", available=False)])

        async def off_shelf() -> bool:
            return not (await by_sku(api, platform))["VIDEO-VIP-1M"]["onShelf"]

        # Then the periodic sync takes it off shelf, and A's next order is refused at once,
        # not sent to the supplier from a cached offer
        assert await eventually(off_shelf)
        second = await api.data(PLACE, order_input(video, "sync-2"), token=tree["A"].key)
        assert second["placeOrder"]["order"] is None
        assert second["placeOrder"]["userErrors"] == [
            {
                "field": ["productId"],
                "code": "PRODUCT_NOT_VISIBLE",
                "message": "This product is not for sale to you.",
            }
        ]
    finally:
        await periodic.stop()


async def test_the_periodic_sync_outlives_a_supplier_that_is_down(
    api: Api, server: LiveServer, tree: dict[str, Node], tmp_path: Path
) -> None:
    # Given two suppliers, one of which is down
    platform = tree["root"].key
    with simulator(tmp_path) as gone:
        await add_supplier(api, platform, gone)
    with simulator(tmp_path) as sim:
        await add_supplier(api, platform, sim)
        services: Services = server.app.state.services
        periodic = SupplierSync(services.db, services.suppliers, services.invalidation, 3600)

        # When one pass runs, and then another
        first = await periodic.run_once()
        second = await periodic.run_once()

    # Then each pass synced the supplier that is up, and only it
    assert (first, second) == (1, 1)
    assert len(await by_sku(api, platform)) == len(CATALOG)


async def test_a_periodic_sync_of_zero_seconds_is_off(
    api: Api, server: LiveServer, tree: dict[str, Node], sim: Simulator
) -> None:
    # Given a supplier never synced, and the periodic sync started with an interval of 0
    platform = tree["root"].key
    await add_supplier(api, platform, sim)
    services: Services = server.app.state.services
    periodic = SupplierSync(services.db, services.suppliers, services.invalidation, 0)
    await periodic.start()
    try:
        # When a while passes
        await asyncio.sleep(0.5)

        # Then nothing was synced
        assert await by_sku(api, platform) == {}
        assert (await api.data(SUPPLIERS, token=platform))["suppliers"][0]["syncedAt"] is None
    finally:
        await periodic.stop()
