"""The catalog through GraphQL: suppliers, products, visibility, stock and refusals."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from persistence import catalog
from persistence.catalog import RetiredKey
from persistence.keyring import Keyring, add_key
from settings import Settings
from tests.conftest import ISSUE_KEY, Api, Node

PRODUCT_FIELDS = """
  id name category faceValue costPrice basePrice fulfilment
  supplier { id name baseUrl } supplierSku validityDays maxUses onShelf createdAt updatedAt
  stock { productId available reserved sold frozen }
"""

CREATE_SUPPLIER = """
mutation($input: CreateSupplierInput!) {
  createSupplier(input: $input) {
    supplier { id name baseUrl createdAt }
    userErrors { field code message }
  }
}
"""

CREATE_PRODUCT = f"""
mutation($input: CreateProductInput!) {{
  createProduct(input: $input) {{
    product {{ {PRODUCT_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}
"""

UPDATE_PRODUCT = f"""
mutation($input: UpdateProductInput!) {{
  updateProduct(input: $input) {{
    product {{ {PRODUCT_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}
"""

SET_ON_SHELF = """
mutation($input: SetProductOnShelfInput!) {
  setProductOnShelf(input: $input) {
    product { id onShelf updatedAt }
    userErrors { field code message }
  }
}
"""

PRODUCT = f"query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"

PRODUCTS = """
query($filter: ProductFilter, $first: Int, $after: String) {
  products(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id name onShelf } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""

SUPPLIERS = "{ suppliers { id name baseUrl createdAt } }"

SECRET = "hmac-shared-secret-4f9a1c"

FORBIDDEN = {
    "field": None,
    "code": "FORBIDDEN",
    "message": "Only the platform's owners and operators may change the catalog.",
}
NO_SUCH_PRODUCT = {"field": ["productId"], "code": "NOT_FOUND", "message": "No such product."}
NO_SUCH_SUPPLIER = {"field": ["supplierId"], "code": "NOT_FOUND", "message": "No such supplier."}
BAD_MONEY = "Give an amount of 0 or more with at most 2 decimal places."


def product_input(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Video VIP month",
        "category": "VIDEO",
        "faceValue": "30.00",
        "costPrice": "20.00",
        "basePrice": "25.00",
        "fulfilment": "POOL",
    }
    return base | overrides


async def create_product(api: Api, token: str, **overrides: Any) -> dict[str, Any]:
    created = await api.data(CREATE_PRODUCT, {"input": product_input(**overrides)}, token=token)
    payload = created["createProduct"]
    assert payload["userErrors"] == []
    product: dict[str, Any] = payload["product"]
    return product


async def create_supplier(api: Api, token: str, name: str = "Upstream Co") -> dict[str, Any]:
    created = await api.data(
        CREATE_SUPPLIER,
        {"input": {"name": name, "baseUrl": "https://upstream.example/api/", "secret": SECRET}},
        token=token,
    )
    payload = created["createSupplier"]
    assert payload["userErrors"] == []
    supplier: dict[str, Any] = payload["supplier"]
    return supplier


async def catalog_rows(db: asyncpg.Connection[Any]) -> list[list[dict[str, Any]]]:
    """Every supplier and product row, to show that a refusal changed nothing."""
    return [
        [dict(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY id")]
        for table in ("suppliers", "products")
    ]


def opaque(kind: str, key: int) -> str:
    return base64.b64encode(f"{kind}:{key}".encode()).decode()


async def issue_key(api: Api, token: str, role: str) -> str:
    issued = await api.data(
        ISSUE_KEY, {"input": {"name": f"{role} key", "role": role}}, token=token
    )
    secret: str = issued["issueApiKey"]["secret"]
    return secret


# --- suppliers --------------------------------------------------------------------------


async def test_supplier_secret_is_sealed_and_never_returned(
    api: Api, platform_key: str, db: asyncpg.Connection[Any], settings: Settings
) -> None:
    # Given the platform registers a supplier
    created = await api.raw(
        CREATE_SUPPLIER,
        {
            "input": {
                "name": " Upstream  Co ",
                "baseUrl": "https://upstream.example/api/",
                "secret": SECRET,
            }
        },
        token=platform_key,
    )

    # Then the supplier comes back cleaned, without its secret
    supplier = created["data"]["createSupplier"]["supplier"]
    assert supplier["name"] == "Upstream Co"
    assert supplier["baseUrl"] == "https://upstream.example/api"
    assert created["data"]["createSupplier"]["userErrors"] == []
    assert SECRET not in json.dumps(created)

    # And the platform lists it, still without the secret
    listed = await api.raw(SUPPLIERS, token=platform_key)
    assert listed["data"]["suppliers"] == [supplier]
    assert SECRET not in json.dumps(listed)

    # And the table holds no plaintext, only a blob sealed under the active key
    rows = await db.fetch("SELECT s::text AS text, secret_ciphertext, key_id FROM suppliers s")
    assert len(rows) == 1
    assert SECRET not in rows[0]["text"]
    assert SECRET.encode() not in rows[0]["secret_ciphertext"]
    keyring = await Keyring.load(db, settings.resolved_master_key())
    assert rows[0]["key_id"] == keyring.active_id
    opened = await keyring.decrypt(
        db, rows[0]["key_id"], rows[0]["secret_ciphertext"], aad=b"supplier-secret"
    )
    assert opened == SECRET


async def test_supplier_secret_is_sealed_under_a_key_rotated_in_by_another_process(
    api: Api, platform_key: str, db: asyncpg.Connection[Any], settings: Settings
) -> None:
    # Given another process activated a new data key after the server started
    other = await Keyring.load(db, settings.resolved_master_key())
    new_key = await add_key(db, other, activate=True)

    # When the platform registers a supplier
    await create_supplier(api, platform_key)

    # Then its secret is sealed under the new key
    row = await db.fetchrow("SELECT key_id, secret_ciphertext FROM suppliers")
    assert row is not None
    assert row["key_id"] == new_key
    await other.reload(db)
    assert await other.decrypt(db, new_key, row["secret_ciphertext"], b"supplier-secret") == SECRET

    # And a seal under a key deleted meanwhile is refused, so the caller seals again
    with pytest.raises(RetiredKey):
        await catalog.insert_supplier(db, "Late", "https://late.example", b"blob", 999)


async def test_only_the_platform_sees_and_creates_suppliers(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given one supplier
    await create_supplier(api, tree["root"].key)
    before = await catalog_rows(db)

    # When an agent lists suppliers, it is refused with a FORBIDDEN error
    listed = await api.raw(SUPPLIERS, token=tree["A"].key)
    assert listed["data"] is None
    assert [(e["message"], e["extensions"]["code"]) for e in listed["errors"]] == [
        ("Only the platform sees suppliers.", "FORBIDDEN")
    ]

    # And when an agent's owner or a platform FINANCE key creates one, both are refused
    finance = await issue_key(api, tree["root"].key, "FINANCE")
    for token in (tree["A"].key, tree["A11"].key, finance):
        refused = await api.data(
            CREATE_SUPPLIER,
            {"input": {"name": "Shadow", "baseUrl": "https://x.example", "secret": SECRET}},
            token=token,
        )
        assert refused["createSupplier"] == {"supplier": None, "userErrors": [FORBIDDEN]}

    # Then nothing changed
    assert await catalog_rows(db) == before


async def test_create_supplier_refuses_bad_input(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # When the platform gives a blank name, an ftp URL and a short secret
    refused = await api.data(
        CREATE_SUPPLIER,
        {"input": {"name": "  ", "baseUrl": "ftp://upstream.example", "secret": "short"}},
        token=platform_key,
    )

    # Then all three are reported and no supplier exists
    assert refused["createSupplier"] == {
        "supplier": None,
        "userErrors": [
            {
                "field": ["name"],
                "code": "INVALID_INPUT",
                "message": "Give a name of 1 to 100 characters.",
            },
            {
                "field": ["baseUrl"],
                "code": "INVALID_INPUT",
                "message": "Give an http:// or https:// URL of at most 500 characters.",
            },
            {
                "field": ["secret"],
                "code": "INVALID_INPUT",
                "message": "Give a secret of 16 to 512 characters without surrounding spaces.",
            },
        ],
    }
    assert await catalog_rows(db) == [[], []]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9000/api", "127.0.0.1 is a loopback address"),
        ("http://localhost/api", "localhost is a loopback name"),
        ("http://10.1.2.3", "10.1.2.3 is a private address"),
    ],
)
async def test_a_supplier_on_a_private_address_is_refused(
    api: Api, platform_key: str, db: asyncpg.Connection[Any], url: str, reason: str
) -> None:
    # When the platform names a supplier on a loopback or private address (not allowed
    # here: QUANYI_ALLOW_PRIVATE_TARGETS is off)
    refused = await api.data(
        CREATE_SUPPLIER,
        {"input": {"name": "Inside", "baseUrl": url, "secret": SECRET}},
        token=platform_key,
    )

    # Then it is refused and nothing is stored
    assert refused["createSupplier"]["userErrors"] == [
        {
            "field": ["baseUrl"],
            "code": "INVALID_INPUT",
            "message": f"This address is not allowed: {reason}.",
        }
    ]
    assert await catalog_rows(db) == [[], []]


# --- products: reading ------------------------------------------------------------------


async def test_platform_and_agents_read_a_product_with_its_stock(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a REALTIME product of a supplier, with two pools holding codes
    supplier = await create_supplier(api, tree["root"].key)
    product = await create_product(
        api,
        tree["root"].key,
        name="Music VIP year",
        category="MUSIC",
        faceValue="158",
        costPrice="120.5",
        basePrice="130.00",
        fulfilment="REALTIME",
        supplierId=supplier["id"],
        supplierSku="music-y",
        validityDays=365,
        maxUses=3,
    )
    assert product["createdAt"] == product["updatedAt"]
    key = int(base64.b64decode(product["id"]).decode().split(":")[1])
    await db.execute(
        "INSERT INTO pools (product_id, name, available, reserved, sold, frozen)"
        " VALUES ($1, 'first', 5, 1, 7, 2), ($1, 'second', 10, 0, 3, 0)",
        key,
    )

    # When the platform reads it
    seen = (await api.data(PRODUCT, {"id": product["id"]}, token=tree["root"].key))["product"]

    # Then it sees every field, money as strings with two places, stock summed over pools
    assert seen == product | {
        "stock": {
            "productId": product["id"],
            "available": 15,
            "reserved": 1,
            "sold": 10,
            "frozen": 2,
        }
    }
    assert (seen["faceValue"], seen["costPrice"], seen["basePrice"]) == (
        "158.00",
        "120.50",
        "130.00",
    )
    assert seen["supplier"] == {
        "id": supplier["id"],
        "name": "Upstream Co",
        "baseUrl": "https://upstream.example/api",
    }
    assert (seen["fulfilment"], seen["supplierSku"], seen["validityDays"], seen["maxUses"]) == (
        "REALTIME",
        "music-y",
        365,
        3,
    )

    # And an agent deep in the tree sees the same product without cost or sourcing
    for agent in ("A", "A11"):
        agent_view = await api.raw(PRODUCT, {"id": product["id"]}, token=tree[agent].key)
        assert agent_view["data"]["product"] == seen | {
            "costPrice": None,
            "supplier": None,
            "supplierSku": None,
        }
        assert "120.50" not in json.dumps(agent_view)


async def test_off_shelf_products_are_hidden_from_agents(api: Api, tree: dict[str, Node]) -> None:
    # Given one product on shelf and one created off shelf
    shown = await create_product(api, tree["root"].key, name="On shelf")
    hidden = await create_product(api, tree["root"].key, name="Off shelf", onShelf=False)
    assert hidden["onShelf"] is False

    # Then the platform sees both, an agent only the one on shelf
    async def names(token: str, filter: dict[str, Any] | None = None) -> list[str]:
        page = await api.data(PRODUCTS, {"filter": filter}, token=token)
        return [e["node"]["name"] for e in page["products"]["edges"]]

    assert await names(tree["root"].key) == ["On shelf", "Off shelf"]
    assert await names(tree["A"].key) == ["On shelf"]
    assert await names(tree["A"].key, {"onShelf": False}) == []
    assert await names(tree["root"].key, {"onShelf": False}) == ["Off shelf"]

    # And the hidden one reads as null for agents, not as an error
    for agent in ("A", "A1", "B"):
        body = await api.raw(PRODUCT, {"id": hidden["id"]}, token=tree[agent].key)
        assert body == {"data": {"product": None}}
    assert (await api.data(PRODUCT, {"id": shown["id"]}, token=tree["A"].key))["product"]

    # When the platform puts it on shelf, agents see it; off again, they don't
    put_on = await api.data(
        SET_ON_SHELF,
        {"input": {"productId": hidden["id"], "onShelf": True}},
        token=tree["root"].key,
    )
    assert put_on["setProductOnShelf"]["userErrors"] == []
    assert put_on["setProductOnShelf"]["product"]["onShelf"] is True
    assert datetime.fromisoformat(
        put_on["setProductOnShelf"]["product"]["updatedAt"]
    ) > datetime.fromisoformat(hidden["updatedAt"])
    assert await names(tree["A"].key) == ["On shelf", "Off shelf"]
    await api.data(
        SET_ON_SHELF,
        {"input": {"productId": shown["id"], "onShelf": False}},
        token=tree["root"].key,
    )
    assert await names(tree["A"].key) == ["Off shelf"]
    assert (await api.data(PRODUCT, {"id": shown["id"]}, token=tree["A"].key))["product"] is None


async def test_products_filter_by_category_and_name(api: Api, platform_key: str) -> None:
    # Given products of several categories and names
    for name, category in [
        ("Video VIP month", "VIDEO"),
        ("Video vip year", "VIDEO"),
        ("Music VIP month", "MUSIC"),
        ("Coffee 100% voucher", "FOOD"),
        ("Coffee 1000 voucher", "FOOD"),
        ("Mobile top-up 50", "TELECOM"),
    ]:
        await create_product(api, platform_key, name=name, category=category)

    async def names(filter: dict[str, Any]) -> list[str]:
        page = await api.data(PRODUCTS, {"filter": filter}, token=platform_key)
        return [e["node"]["name"] for e in page["products"]["edges"]]

    # Then each filter, and their combination, finds exactly its products in id order
    assert await names({"category": "VIDEO"}) == ["Video VIP month", "Video vip year"]
    assert await names({"search": "vip"}) == [
        "Video VIP month",
        "Video vip year",
        "Music VIP month",
    ]
    assert await names({"search": "VIP", "category": "MUSIC"}) == ["Music VIP month"]
    assert await names({"search": "  vip   MONTH "}) == ["Video VIP month", "Music VIP month"]
    # A % in the search is a literal percent sign, not a wildcard
    assert await names({"search": "100%"}) == ["Coffee 100% voucher"]
    assert await names({"search": "nothing like it"}) == []
    assert await names({"category": "GAME"}) == []


async def test_products_page_through_with_cursors(api: Api, tree: dict[str, Node]) -> None:
    # Given seven products, the third off shelf
    for i in range(7):
        await create_product(api, tree["root"].key, name=f"Card {i}", onShelf=i != 2)

    async def page_through(token: str) -> tuple[list[str], int]:
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            body = await api.data(PRODUCTS, {"first": 2, "after": after}, token=token)
            products = body["products"]
            seen += [e["node"]["name"] for e in products["edges"]]
            assert products["pageInfo"]["hasPreviousPage"] is (after is not None)
            pages += 1
            if not products["pageInfo"]["hasNextPage"]:
                return seen, pages
            after = products["pageInfo"]["endCursor"]

    # When the platform and an agent page through two at a time
    # Then each product comes once, in order; the agent's pages skip the hidden one
    assert await page_through(tree["root"].key) == ([f"Card {i}" for i in range(7)], 4)
    assert await page_through(tree["A"].key) == (
        [f"Card {i}" for i in range(7) if i != 2],
        3,
    )

    # And a forged cursor or an oversized page is a request error
    forged = await api.raw(PRODUCTS, {"after": "not-a-cursor"}, token=tree["A"].key)
    assert forged["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    oversized = await api.raw(PRODUCTS, {"first": 1000}, token=tree["A"].key)
    assert oversized["errors"][0]["message"] == "`first` must be between 0 and 100."


async def test_reading_the_catalog_needs_a_caller(api: Api, platform_key: str) -> None:
    await create_product(api, platform_key)
    body = await api.raw(PRODUCTS)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- products: changing -----------------------------------------------------------------


async def test_update_product_changes_only_the_fields_given(api: Api, platform_key: str) -> None:
    # Given a product with a validity
    supplier = await create_supplier(api, platform_key)
    product = await create_product(api, platform_key, validityDays=30)

    # When an operator changes its price and name, and clears the validity
    operator = await issue_key(api, platform_key, "OPERATOR")
    updated = await api.data(
        UPDATE_PRODUCT,
        {
            "input": {
                "productId": product["id"],
                "name": "Video VIP month (new)",
                "basePrice": "26.5",
                "validityDays": None,
                "supplierId": supplier["id"],
                "supplierSku": "vip-m",
            }
        },
        token=operator,
    )

    # Then exactly those fields change and updatedAt moves forward
    payload = updated["updateProduct"]
    assert payload["userErrors"] == []
    changed = payload["product"]
    assert changed == product | {
        "name": "Video VIP month (new)",
        "basePrice": "26.50",
        "validityDays": None,
        "supplier": {"id": supplier["id"], "name": "Upstream Co", "baseUrl": supplier["baseUrl"]},
        "supplierSku": "vip-m",
        "updatedAt": changed["updatedAt"],
    }
    assert datetime.fromisoformat(changed["updatedAt"]) > datetime.fromisoformat(
        product["updatedAt"]
    )

    # And an update that changes nothing leaves updatedAt alone
    same = await api.data(
        UPDATE_PRODUCT,
        {"input": {"productId": product["id"], "basePrice": "26.50"}},
        token=operator,
    )
    assert same["updateProduct"]["product"] == changed


async def test_create_product_refusals_change_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a supplier with one product of SKU vip-m
    platform = tree["root"].key
    supplier = await create_supplier(api, platform)
    await create_product(api, platform, supplierId=supplier["id"], supplierSku="vip-m")
    before = await catalog_rows(db)
    finance = await issue_key(api, platform, "FINANCE")

    async def refused(token: str, **overrides: Any) -> list[dict[str, Any]]:
        body = await api.data(CREATE_PRODUCT, {"input": product_input(**overrides)}, token=token)
        assert body["createProduct"]["product"] is None
        errors: list[dict[str, Any]] = body["createProduct"]["userErrors"]
        return errors

    # When agents or a platform finance key try, they are refused without detail
    for token in (tree["A"].key, tree["A11"].key, finance):
        assert await refused(token) == [FORBIDDEN]
    # Even with input that is wrong in other ways
    assert await refused(tree["B"].key, supplierId=opaque("Supplier", 999), faceValue="-1") == [
        FORBIDDEN
    ]

    # When the platform gives bad money
    assert await refused(platform, faceValue="-1", costPrice="0.001", basePrice="NaN") == [
        {"field": ["faceValue"], "code": "INVALID_INPUT", "message": BAD_MONEY},
        {"field": ["costPrice"], "code": "INVALID_INPUT", "message": BAD_MONEY},
        {"field": ["basePrice"], "code": "INVALID_INPUT", "message": BAD_MONEY},
    ]
    assert await refused(platform, faceValue="1000000000000") == [
        {
            "field": ["faceValue"],
            "code": "INVALID_INPUT",
            "message": "Give an amount below 1000000000000.",
        }
    ]

    # When the base price is below the cost
    assert await refused(platform, costPrice="20.00", basePrice="19.99") == [
        {
            "field": ["basePrice"],
            "code": "PRICE_BELOW_COST",
            "message": "The base price 19.99 is below the cost price 20.00.",
        }
    ]

    # When a REALTIME product has no supplier or SKU
    assert await refused(platform, fulfilment="REALTIME") == [
        {
            "field": ["supplierId"],
            "code": "INVALID_INPUT",
            "message": "A REALTIME product needs a supplier.",
        },
        {
            "field": ["supplierSku"],
            "code": "INVALID_INPUT",
            "message": "A REALTIME product needs the supplier's SKU.",
        },
    ]

    # When the supplier is unknown, or the id is of another kind or not an id at all
    for bad_id in (opaque("Supplier", 999), opaque("Product", 1), "garbage"):
        assert await refused(
            platform, fulfilment="REALTIME", supplierId=bad_id, supplierSku="x-1"
        ) == [NO_SUCH_SUPPLIER]

    # When the supplier already has a product with the SKU
    assert await refused(platform, supplierId=supplier["id"], supplierSku=" vip-m ") == [
        {
            "field": ["supplierSku"],
            "code": "INVALID_INPUT",
            "message": "This supplier already has a product with SKU vip-m.",
        }
    ]

    # When the name and the counts are out of range
    assert await refused(platform, name="", validityDays=0, maxUses=0) == [
        {
            "field": ["name"],
            "code": "INVALID_INPUT",
            "message": "Give a name of 1 to 200 characters.",
        },
        {
            "field": ["validityDays"],
            "code": "INVALID_INPUT",
            "message": "Give a validity of 1 to 3650 days, or none.",
        },
        {
            "field": ["maxUses"],
            "code": "INVALID_INPUT",
            "message": "Give a number of uses from 1 to 1000000.",
        },
    ]

    # A malformed decimal is a GraphQL error, not a userError
    malformed = await api.raw(
        CREATE_PRODUCT, {"input": product_input(faceValue="abc")}, token=platform
    )
    assert malformed["data"] is None
    assert "Decimal" in malformed["errors"][0]["message"]

    # Then nothing changed
    assert await catalog_rows(db) == before


async def test_update_and_shelf_refusals_change_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a product (and a supplier with one other product of SKU taken)
    platform = tree["root"].key
    supplier = await create_supplier(api, platform)
    await create_product(
        api, platform, name="Other", supplierId=supplier["id"], supplierSku="taken"
    )
    product = await create_product(
        api, platform, fulfilment="REALTIME", supplierId=supplier["id"], supplierSku="mine"
    )
    before = await catalog_rows(db)

    async def refused(token: str, **fields: Any) -> list[dict[str, Any]]:
        body = await api.data(
            UPDATE_PRODUCT, {"input": {"productId": product["id"]} | fields}, token=token
        )
        assert body["updateProduct"]["product"] is None
        errors: list[dict[str, Any]] = body["updateProduct"]["userErrors"]
        return errors

    # When an agent updates an existing or a non-existent product, both look the same
    assert await refused(tree["A"].key, name="Mine now") == [FORBIDDEN]
    assert await refused(tree["A"].key, productId=opaque("Product", 999)) == [FORBIDDEN]

    # When the platform names an unknown product
    for bad_id in (opaque("Product", 999), opaque("Supplier", 1), "garbage"):
        assert await refused(platform, productId=bad_id, name="x") == [NO_SUCH_PRODUCT]

    # When a change puts the base price below the (stored) cost
    assert await refused(platform, basePrice="19.00") == [
        {
            "field": ["basePrice"],
            "code": "PRICE_BELOW_COST",
            "message": "The base price 19.00 is below the cost price 20.00.",
        }
    ]
    # When a REALTIME product loses its supplier
    assert await refused(platform, supplierId=None, supplierSku=None) == [
        {
            "field": ["supplierId"],
            "code": "INVALID_INPUT",
            "message": "A REALTIME product needs a supplier.",
        },
        {
            "field": ["supplierSku"],
            "code": "INVALID_INPUT",
            "message": "A REALTIME product needs the supplier's SKU.",
        },
    ]
    # When a required field is set to null, a supplier is unknown, or money is bad
    assert await refused(
        platform, name=None, supplierId=opaque("Supplier", 999), costPrice="-3"
    ) == [
        NO_SUCH_SUPPLIER,
        {
            "field": ["name"],
            "code": "INVALID_INPUT",
            "message": "name cannot be null; leave it out to keep it.",
        },
        {"field": ["costPrice"], "code": "INVALID_INPUT", "message": BAD_MONEY},
    ]
    # When the new SKU is taken
    assert await refused(platform, supplierSku="taken") == [
        {
            "field": ["supplierSku"],
            "code": "INVALID_INPUT",
            "message": "This supplier already has a product with SKU taken.",
        }
    ]

    # When an agent or an unknown id meets setProductOnShelf
    async def shelf(token: str, product_id: str) -> dict[str, Any]:
        body = await api.data(
            SET_ON_SHELF, {"input": {"productId": product_id, "onShelf": False}}, token=token
        )
        payload: dict[str, Any] = body["setProductOnShelf"]
        return payload

    assert await shelf(tree["A"].key, product["id"]) == {"product": None, "userErrors": [FORBIDDEN]}
    assert await shelf(platform, opaque("Product", 999)) == {
        "product": None,
        "userErrors": [NO_SUCH_PRODUCT],
    }

    # Then nothing changed
    assert await catalog_rows(db) == before


async def test_concurrent_updates_leave_one_consistent_row(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given one product
    product = await create_product(api, platform_key)
    inputs = [
        {
            "productId": product["id"],
            "name": f"Edition {i}",
            "faceValue": f"{100 + i}.00",
            "costPrice": f"{10 + i}.00",
            "basePrice": f"{50 + i}.25",
            "validityDays": i + 1,
            "maxUses": i + 1,
            "onShelf": i % 2 == 0,
        }
        for i in range(20)
    ]

    # When 20 updates of every field arrive at once
    results = await asyncio.gather(
        *(api.data(UPDATE_PRODUCT, {"input": i}, token=platform_key) for i in inputs)
    )

    # Then each succeeded, each at its own later time
    payloads = [r["updateProduct"] for r in results]
    assert all(p["userErrors"] == [] for p in payloads)
    times = [datetime.fromisoformat(p["product"]["updatedAt"]) for p in payloads]
    assert len(set(times)) == 20
    assert min(times) > datetime.fromisoformat(product["updatedAt"])

    # And the row is exactly the input of the update that came last, whole
    last = inputs[times.index(max(times))]
    row = await db.fetchrow("SELECT * FROM products")
    assert row is not None
    assert (
        row["name"],
        str(row["face_value"]),
        str(row["cost_price"]),
        str(row["base_price"]),
        row["validity_days"],
        row["max_uses"],
        row["on_shelf"],
    ) == (
        last["name"],
        last["faceValue"],
        last["costPrice"],
        last["basePrice"],
        last["validityDays"],
        last["maxUses"],
        last["onShelf"],
    )
    assert row["updated_at"] == max(times)
    # Each response shows the row as its own update left it
    for given, payload in zip(inputs, payloads, strict=True):
        assert payload["product"]["name"] == given["name"]
        assert payload["product"]["basePrice"] == given["basePrice"]


async def test_concurrent_partial_updates_are_checked_against_each_other(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given a product costing 10.00 with a base price of 50.00
    product = await create_product(api, platform_key, costPrice="10.00", basePrice="50.00")
    below = {
        "field": ["basePrice"],
        "code": "PRICE_BELOW_COST",
        "message": "The base price 30.00 is below the cost price 40.00.",
    }

    for _ in range(5):
        # When one update raises the cost to 40.00 while another lowers the base to 30.00
        # (each fine alone, together the base would be below the cost)
        raise_cost, lower_base = await asyncio.gather(
            api.data(
                UPDATE_PRODUCT,
                {"input": {"productId": product["id"], "costPrice": "40.00"}},
                token=platform_key,
            ),
            api.data(
                UPDATE_PRODUCT,
                {"input": {"productId": product["id"], "basePrice": "30.00"}},
                token=platform_key,
            ),
        )

        # Then exactly one applies and the other is refused as below cost
        outcomes = [r["updateProduct"] for r in (raise_cost, lower_base)]
        assert sorted((o["userErrors"] for o in outcomes), key=len) == [[], [below]]
        row = await db.fetchrow("SELECT cost_price, base_price FROM products")
        assert row is not None
        assert (str(row["cost_price"]), str(row["base_price"])) in {
            ("40.00", "50.00"),
            ("10.00", "30.00"),
        }

        # (back to the start for the next round)
        reset = await api.data(
            UPDATE_PRODUCT,
            {"input": {"productId": product["id"], "costPrice": "10.00", "basePrice": "50.00"}},
            token=platform_key,
        )
        assert reset["updateProduct"]["userErrors"] == []
