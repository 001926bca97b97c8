"""Channel commerce through GraphQL: prices per level, visible products, restrictions."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from actors.messages import Reserved
from domain.channels import SaleRule, check_sale
from domain.commerce import MARKUP_MESSAGE, PRICE_CHOICE_MESSAGE
from domain.money import with_markup
from persistence import commerce, pricing
from schema import ids
from server import Services
from tests.conftest import Api, LiveServer, Node
from tests.e2e.test_auth import forbidden, issue_key
from tests.e2e.test_catalog import BAD_MONEY, create_product, opaque
from tests.e2e.test_stock_subscription import next_level, subscriber
from tests.integration.pool_fixtures import make_pool

SET_PRICE = """
mutation($input: SetChannelPriceInput!) {
  setChannelPrice(input: $input) {
    channel { id } product { id name } price
    userErrors { field code message }
  }
}
"""

SET_MARKUP = """
mutation($input: SetChannelDefaultMarkupInput!) {
  setChannelDefaultMarkup(input: $input) {
    channel { id defaultMarkupPercent }
    userErrors { field code message }
  }
}
"""

SET_PRODUCTS = """
mutation($input: SetChannelProductsInput!) {
  setChannelProducts(input: $input) {
    channel { id }
    userErrors { field code message }
  }
}
"""

SET_RESTRICTIONS = """
mutation($input: SetChannelRestrictionsInput!) {
  setChannelRestrictions(input: $input) {
    channel { id regions customerGroups }
    userErrors { field code message }
  }
}
"""

PRODUCT_PRICE = "query($id: ID!) { product(id: $id) { name price } }"
PRODUCT_NAMES = "{ products(first: 100) { nodes { name price } } }"

CHANNEL_PRICES = """
query($id: ID) {
  channel(id: $id) {
    defaultMarkupPercent
    prices(first: 10) {
      edges { node { product { name } price markupPercent effectivePrice } }
      pageInfo { hasNextPage }
    }
  }
}
"""

PRICE_CHAIN = """
query($product: ID!, $channel: ID) {
  priceChain(productId: $product, channelId: $channel) { channel { name } price }
}
"""

NO_SUCH_CHANNEL = {"field": ["channelId"], "code": "NOT_FOUND", "message": "No such channel."}
NO_SUCH_PRODUCT = {"field": ["productId"], "code": "NOT_FOUND", "message": "No such product."}
DIRECT_CHILDREN_ONLY = {
    "field": ["channelId"],
    "code": "FORBIDDEN",
    "message": "You set prices for your direct children only.",
}


async def set_price(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    body = await api.data(SET_PRICE, {"input": fields}, token=token)
    payload: dict[str, Any] = body["setChannelPrice"]
    return payload


async def price_seen(api: Api, token: str, product_id: str) -> str | None:
    product = (await api.data(PRODUCT_PRICE, {"id": product_id}, token=token))["product"]
    return None if product is None else str(product["price"])


async def prices_seen(api: Api, tree: dict[str, Node], product_id: str) -> dict[str, str | None]:
    return {name: await price_seen(api, node.key, product_id) for name, node in tree.items()}


async def names_listed(api: Api, token: str) -> list[str]:
    return [p["name"] for p in (await api.data(PRODUCT_NAMES, token=token))["products"]["nodes"]]


async def commerce_rows(db: asyncpg.Connection[Any]) -> list[list[dict[str, Any]]]:
    """Prices, hidden products and channels' settings, to show a refusal changed nothing."""
    return [
        [dict(r) for r in await db.fetch(query)]
        for query in (
            "SELECT * FROM channel_prices ORDER BY channel_id, product_id",
            "SELECT * FROM hidden_products ORDER BY channel_id, product_id",
            "SELECT id, regions, customer_groups, default_markup_percent FROM channels ORDER BY id",
        )
    ]


def key_of(node_id: str, kind: str = "Channel") -> int:
    key = ids.decode(kind, node_id)
    assert key is not None
    return key


# --- prices -----------------------------------------------------------------------------


async def test_prices_at_three_levels(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a product costing 20.00 with a base price of 25.00
    product = await create_product(api, tree["root"].key, costPrice="20.00", basePrice="25.00")
    pid = product["id"]

    # Then before any price is set, the platform buys at cost and everyone else at base
    assert await prices_seen(api, tree, pid) == {
        "root": "20.00",
        "A": "25.00",
        "A1": "25.00",
        "A11": "25.00",
        "B": "25.00",
    }

    # When the platform sets A 26.00, A marks A1 up 10% and A1 adds 5% by default
    to_a = await set_price(api, tree["root"].key, channelId=tree["A"].id, productId=pid, price="26")
    to_a1 = await set_price(
        api, tree["A"].key, channelId=tree["A1"].id, productId=pid, markupPercent="10"
    )
    markup = await api.data(SET_MARKUP, {"input": {"markupPercent": "5"}}, token=tree["A1"].key)

    # Then each payload tells the child's new price
    assert to_a == {
        "channel": {"id": tree["A"].id},
        "product": {"id": pid, "name": product["name"]},
        "price": "26.00",
        "userErrors": [],
    }
    assert (to_a1["price"], to_a1["userErrors"]) == ("28.60", [])
    assert markup["setChannelDefaultMarkup"] == {
        "channel": {"id": tree["A1"].id, "defaultMarkupPercent": "5.000"},
        "userErrors": [],
    }

    # And each channel sees its own purchase price; A11 inherits A1's plus A1's 5%
    assert await prices_seen(api, tree, pid) == {
        "root": "20.00",
        "A": "26.00",
        "A1": "28.60",
        "A11": "30.03",
        "B": "25.00",
    }
    assert (await api.data(PRODUCT_NAMES, token=tree["A11"].key))["products"]["nodes"] == [
        {"name": product["name"], "price": "30.03"}
    ]

    # And A reads the chain below it, and the price it set for A1
    chain = await api.data(
        PRICE_CHAIN, {"product": pid, "channel": tree["A11"].id}, token=tree["A"].key
    )
    assert chain["priceChain"] == [
        {"channel": {"name": "A"}, "price": "26.00"},
        {"channel": {"name": "A1"}, "price": "28.60"},
        {"channel": {"name": "A11"}, "price": "30.03"},
    ]
    a1 = await api.data(CHANNEL_PRICES, {"id": tree["A1"].id}, token=tree["A"].key)
    assert a1["channel"] == {
        "defaultMarkupPercent": "5.000",
        "prices": {
            "edges": [
                {
                    "node": {
                        "product": {"name": product["name"]},
                        "price": None,
                        "markupPercent": "10.000",
                        "effectivePrice": "28.60",
                    }
                }
            ],
            "pageInfo": {"hasNextPage": False},
        },
    }
    # And A11 sees nothing of the chain above it
    own = await api.data(PRICE_CHAIN, {"product": pid}, token=tree["A11"].key)
    assert own["priceChain"] == [{"channel": {"name": "A11"}, "price": "30.03"}]

    # When A clears what it set for A1
    cleared = await set_price(
        api, tree["A"].key, channelId=tree["A1"].id, productId=pid, clear=True
    )

    # Then A1 buys at A's price plus A's default markup (0), and A11 follows
    assert cleared["price"] == "26.00"
    assert await price_seen(api, tree["A1"].key, pid) == "26.00"
    assert await price_seen(api, tree["A11"].key, pid) == "27.30"


async def test_a_product_list_resolves_its_prices_in_one_query(
    api: Api, tree: dict[str, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given five products with base prices 21.00 .. 25.00, and A adding 10% by default
    for i in range(1, 6):
        await create_product(api, tree["root"].key, name=f"Card {i}", basePrice=f"{20 + i}.00")
    await api.data(SET_MARKUP, {"input": {"markupPercent": "10"}}, token=tree["A"].key)
    calls: list[int] = []
    original = pricing.price_paths

    async def counted(db: Any, path: str, product_ids: Any) -> Any:
        calls.append(len(product_ids))
        return await original(db, path, product_ids)

    monkeypatch.setattr(pricing, "price_paths", counted)

    # When A1 lists them with their prices
    listed = (await api.data(PRODUCT_NAMES, token=tree["A1"].key))["products"]["nodes"]

    # Then each has its own price, and all were resolved by one batched query
    assert [p["price"] for p in listed] == ["23.10", "24.20", "25.30", "26.40", "27.50"]
    assert calls == [5]


async def test_prices_are_set_for_direct_children_only(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a product, and A having set A1 a price
    pid = (await create_product(api, tree["root"].key))["id"]
    done = await set_price(api, tree["A"].key, channelId=tree["A1"].id, productId=pid, price="27")
    assert done["userErrors"] == []
    before = await commerce_rows(db)

    async def refused(token: str, channel: str) -> list[dict[str, Any]]:
        payload = await set_price(api, token, channelId=channel, productId=pid, price="40.00")
        assert (payload["channel"], payload["price"]) == (None, None)
        errors: list[dict[str, Any]] = payload["userErrors"]
        return errors

    # When A sets a price for its grandchild A11, or for itself
    # Then it is refused: each channel's price is its parent's business
    assert await refused(tree["A"].key, tree["A11"].id) == [DIRECT_CHILDREN_ONLY]
    assert await refused(tree["A"].key, tree["A"].id) == [DIRECT_CHILDREN_ONLY]
    # And channels outside A's subtree do not exist for it
    for outside in (tree["B"].id, tree["root"].id, opaque("Channel", 999), "garbage"):
        assert await refused(tree["A"].key, outside) == [NO_SUCH_CHANNEL]
    # And the platform cannot skip a level either
    assert await refused(tree["root"].key, tree["A1"].id) == [DIRECT_CHILDREN_ONLY]

    # Then nothing changed, and A11 inherits A1's price plus A1's default markup
    assert await commerce_rows(db) == before
    assert await price_seen(api, tree["A11"].key, pid) == "27.00"


async def test_price_below_cost_and_bad_input_change_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a product costing 20.00, which the platform sells A at 26.00
    pid = (await create_product(api, tree["root"].key, costPrice="20.00", basePrice="25.00"))["id"]
    assert (
        await set_price(api, tree["root"].key, channelId=tree["A"].id, productId=pid, price="26")
    )["userErrors"] == []
    finance = await issue_key(api, tree["A"].key, tree["A"].id, "FINANCE")
    before = await commerce_rows(db)

    async def refused(token: str, **fields: Any) -> list[dict[str, Any]]:
        payload = await set_price(api, token, **({"productId": pid} | fields))
        assert (payload["channel"], payload["product"], payload["price"]) == (None, None, None)
        errors: list[dict[str, Any]] = payload["userErrors"]
        return errors

    a, a1 = tree["A"].key, tree["A1"].id
    # When A would sell A1 below its own price, or the platform A below cost
    assert await refused(a, channelId=a1, price="25.99") == [
        {
            "field": ["price"],
            "code": "PRICE_BELOW_COST",
            "message": "The price 25.99 is below your own purchase price 26.00.",
        }
    ]
    assert await refused(tree["root"].key, channelId=tree["A"].id, price="19.99") == [
        {
            "field": ["price"],
            "code": "PRICE_BELOW_COST",
            "message": "The price 19.99 is below your own purchase price 20.00.",
        }
    ]
    # When the input names both, neither, or a price with clear
    choice = [{"field": ["price"], "code": "INVALID_INPUT", "message": PRICE_CHOICE_MESSAGE}]
    assert await refused(a, channelId=a1, price="30", markupPercent="5") == choice
    assert await refused(a, channelId=a1) == choice
    assert await refused(a, channelId=a1, price="30", clear=True) == choice
    # When the amounts are malformed
    assert await refused(a, channelId=a1, price="30.001") == [
        {"field": ["price"], "code": "INVALID_INPUT", "message": BAD_MONEY}
    ]
    assert await refused(a, channelId=a1, markupPercent="1000.5") == [
        {"field": ["markupPercent"], "code": "INVALID_INPUT", "message": MARKUP_MESSAGE}
    ]
    # When the product does not exist, or the role may not set prices
    assert await refused(a, channelId=a1, productId=opaque("Product", 999), price="30") == [
        NO_SUCH_PRODUCT
    ]
    assert await refused(finance.key, channelId=a1, price="30") == forbidden(
        "Your role may not set prices."
    )

    # And default markups: for the platform, out of range, outside the subtree, by FINANCE
    async def markup_refused(token: str, **fields: Any) -> list[dict[str, Any]]:
        body = await api.data(SET_MARKUP, {"input": fields}, token=token)
        assert body["setChannelDefaultMarkup"]["channel"] is None
        errors: list[dict[str, Any]] = body["setChannelDefaultMarkup"]["userErrors"]
        return errors

    assert await markup_refused(tree["root"].key, markupPercent="5") == [
        {
            "field": ["channelId"],
            "code": "INVALID_INPUT",
            "message": "The platform's agents buy at each product's base price unless it sets"
            " them a price: the platform has no default markup.",
        }
    ]
    assert await markup_refused(a, markupPercent="-1") == [
        {"field": ["markupPercent"], "code": "INVALID_INPUT", "message": MARKUP_MESSAGE}
    ]
    assert await markup_refused(tree["B"].key, channelId=tree["A"].id, markupPercent="5") == [
        NO_SUCH_CHANNEL
    ]
    assert await markup_refused(finance.key, markupPercent="5") == forbidden(
        "Your role may not set markups."
    )

    # Then nothing changed: A1 still buys at A's price
    assert await commerce_rows(db) == before
    assert await price_seen(api, tree["A1"].key, pid) == "26.00"

    # And A may set the default markup of a channel below it
    deeper = await api.data(
        SET_MARKUP, {"input": {"channelId": tree["A1"].id, "markupPercent": "12.5"}}, token=a
    )
    assert deeper["setChannelDefaultMarkup"]["channel"]["defaultMarkupPercent"] == "12.500"
    assert await price_seen(api, tree["A11"].key, pid) == "29.25"


async def test_concurrent_price_settings_leave_one_consistent_row(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a product A buys at its base price of 25.00
    pid = (await create_product(api, tree["root"].key, costPrice="20.00", basePrice="25.00"))["id"]
    inputs: list[dict[str, Any]] = [
        {"price": f"{30 + i}.00"} if i % 2 == 0 else {"markupPercent": f"{i}.5"} for i in range(20)
    ]

    def expected(given: dict[str, Any]) -> str:
        if "price" in given:
            return str(given["price"])
        return str(with_markup(Decimal("25.00"), Decimal(given["markupPercent"])))

    # When A sends 20 different prices for A1 at once
    payloads = await asyncio.gather(
        *(
            set_price(api, tree["A"].key, channelId=tree["A1"].id, productId=pid, **given)
            for given in inputs
        )
    )

    # Then each succeeded and reported the price it set
    assert [p["userErrors"] for p in payloads] == [[]] * 20
    assert [p["price"] for p in payloads] == [expected(given) for given in inputs]

    # And one row is left, exactly one of the inputs, whole, and A1 buys at its price
    rows = await db.fetch(
        "SELECT channel_id, product_id, price, markup_percent FROM channel_prices"
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["channel_id"], row["product_id"]) == (key_of(tree["A1"].id), key_of(pid, "Product"))
    winner = (
        {"price": str(row["price"])}
        if row["price"] is not None
        else {"markupPercent": str(row["markup_percent"].normalize())}
    )
    assert row["price"] is None or row["markup_percent"] is None
    assert winner in inputs
    assert await price_seen(api, tree["A1"].key, pid) == expected(winner)


# --- visibility -------------------------------------------------------------------------


async def test_hidden_products_are_gone_for_the_whole_subtree(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given two products, and A having set A1 a price for the second
    platform = tree["root"].key
    p = (await create_product(api, platform, name="Card P"))["id"]
    q = (await create_product(api, platform, name="Card Q"))["id"]
    await set_price(api, tree["A"].key, channelId=tree["A1"].id, productId=q, markupPercent="1")

    # When the platform hides P for A
    hidden = await api.data(
        SET_PRODUCTS,
        {"input": {"channelId": tree["A"].id, "productIds": [p], "visible": False}},
        token=platform,
    )
    assert hidden["setChannelProducts"] == {"channel": {"id": tree["A"].id}, "userErrors": []}

    # Then A, A1 and A11 neither find nor list it; B and the platform still do
    for name in ("A", "A1", "A11"):
        assert await price_seen(api, tree[name].key, p) is None
        assert await names_listed(api, tree[name].key) == ["Card Q"]
    assert await names_listed(api, tree["B"].key) == ["Card P", "Card Q"]
    assert await names_listed(api, platform) == ["Card P", "Card Q"]
    # And A can no longer price it: it is not found, not forbidden
    assert (await set_price(api, tree["A"].key, channelId=tree["A1"].id, productId=p, price="30"))[
        "userErrors"
    ] == [NO_SUCH_PRODUCT]
    assert (await api.data(PRICE_CHAIN, {"product": p}, token=tree["A"].key))["priceChain"] is None

    # When A hides Q for A1
    await api.data(
        SET_PRODUCTS,
        {"input": {"channelId": tree["A1"].id, "productIds": [q], "visible": False}},
        token=tree["A"].key,
    )

    # Then A1 and A11 see no product at all; A still sees Q and the price it set A1 for it
    assert await names_listed(api, tree["A1"].key) == []
    assert await names_listed(api, tree["A11"].key) == []
    assert await names_listed(api, tree["A"].key) == ["Card Q"]
    by_a = await api.data(CHANNEL_PRICES, {"id": tree["A1"].id}, token=tree["A"].key)
    assert [e["node"]["product"]["name"] for e in by_a["channel"]["prices"]["edges"]] == ["Card Q"]
    by_a1 = await api.data(CHANNEL_PRICES, {"id": None}, token=tree["A1"].key)
    assert by_a1["channel"]["prices"]["edges"] == []

    # When A shows Q to A1 again, and the platform shows P to A again
    for token, channel, product in ((tree["A"].key, "A1", q), (platform, "A", p)):
        shown = await api.data(
            SET_PRODUCTS,
            {"input": {"channelId": tree[channel].id, "productIds": [product], "visible": True}},
            token=token,
        )
        assert shown["setChannelProducts"]["userErrors"] == []

    # Then everyone sees both again
    for name in ("A", "A1", "A11"):
        assert await names_listed(api, tree[name].key) == ["Card P", "Card Q"]
    assert await db.fetchval("SELECT count(*) FROM hidden_products") == 0


async def test_a_channel_cannot_unhide_what_a_channel_above_hides(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given P hidden for A1 by A, and Q visible
    platform = tree["root"].key
    p = (await create_product(api, platform, name="Card P"))["id"]
    q = (await create_product(api, platform, name="Card Q"))["id"]
    await api.data(
        SET_PRODUCTS,
        {"input": {"channelId": tree["A1"].id, "productIds": [p], "visible": False}},
        token=tree["A"].key,
    )
    finance = await issue_key(api, tree["A"].key, tree["A"].id, "FINANCE")
    before = await commerce_rows(db)

    async def refused(token: str, channel: str, products: list[str], visible: bool) -> Any:
        body = await api.data(
            SET_PRODUCTS,
            {"input": {"channelId": channel, "productIds": products, "visible": visible}},
            token=token,
        )
        assert body["setChannelProducts"]["channel"] is None
        return body["setChannelProducts"]["userErrors"]

    below_only = [
        {
            "field": ["channelId"],
            "code": "FORBIDDEN",
            "message": "You choose products for channels below your own only.",
        }
    ]
    # When A1 shows P to itself, or to A11: it cannot see P, so P does not exist for it
    assert await refused(tree["A1"].key, tree["A1"].id, [p], True) == below_only
    assert await refused(tree["A1"].key, tree["A11"].id, [p], True) == [
        {"field": ["productIds", "0"], "code": "NOT_FOUND", "message": "No such product."}
    ]
    # When A names its own channel, a channel outside, or ids that name nothing
    assert await refused(tree["A"].key, tree["A"].id, [q], False) == below_only
    assert await refused(tree["A"].key, tree["B"].id, [q], False) == [NO_SUCH_CHANNEL]
    assert await refused(
        tree["A"].key, tree["A11"].id, [q, "garbage", opaque("Product", 999)], False
    ) == [
        {"field": ["productIds", "1"], "code": "NOT_FOUND", "message": "No such product."},
        {"field": ["productIds", "2"], "code": "NOT_FOUND", "message": "No such product."},
    ]
    assert await refused(finance.key, tree["A11"].id, [q], False) == forbidden(
        "Your role may not choose products for channels."
    )
    assert await refused(tree["A"].key, tree["A11"].id, [q] * 1001, False) == [
        {
            "field": ["productIds"],
            "code": "INVALID_INPUT",
            "message": "Give at most 1000 product ids.",
        }
    ]

    # Then nothing changed and P stays hidden for A1 and A11
    assert await commerce_rows(db) == before
    assert await names_listed(api, tree["A11"].key) == ["Card Q"]


async def test_stock_of_hidden_products_is_not_delivered(
    server: LiveServer, api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given P hidden for A by the platform, and Q and R visible, each with a pool
    platform = tree["root"].key
    p, q, r = [
        (await create_product(api, platform, name=f"Card {n}"))["id"] for n in ("P", "Q", "R")
    ]
    pools = {
        n: await make_pool(db, 10, key_of(i, "Product"))
        for n, i in zip("PQR", (p, q, r), strict=True)
    }

    async def set_visible(product: str, visible: bool) -> None:
        body = await api.data(
            SET_PRODUCTS,
            {"input": {"channelId": tree["A"].id, "productIds": [product], "visible": visible}},
            token=platform,
        )
        assert body["setChannelProducts"]["userErrors"] == []

    await set_visible(p, False)
    # And A1 and the platform watching all stock
    agent = await subscriber(server, tree["A1"].key)
    watcher = await subscriber(server, platform)
    await asyncio.sleep(0.2)
    services: Services = server.app.state.services

    async def reserve(name: str, ref: str) -> None:
        assert isinstance(await services.pools.reserve(pools[name], ref, 1), Reserved)

    # When a code of P is reserved, then one of Q
    await reserve("P", "order-1")
    await reserve("Q", "order-2")

    # Then the platform hears of both (products publish independently, in any order),
    # and the first A1 hears of is Q: never of P
    heard = {(await next_level(watcher, within=1.0))["productId"] for _ in range(2)}
    assert heard == {p, q}
    assert (await next_level(agent, within=1.0))["productId"] == q

    # When, while A1 listens, Q is hidden and P shown, and both change again, then R
    await set_visible(q, False)
    await set_visible(p, True)
    await reserve("Q", "order-3")
    await reserve("P", "order-4")
    await reserve("R", "order-5")

    # Then A1 hears of P and R only
    levels = [await next_level(agent, within=1.0) for _ in range(2)]
    assert sorted((h["productId"], h["reserved"]) for h in levels) == sorted([(p, 2), (r, 1)])
    await agent.close()
    await watcher.close()


# --- restrictions -----------------------------------------------------------------------


async def test_restrictions_narrow_down_the_tree(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    async def restrict(token: str, channel: str, **fields: Any) -> dict[str, Any]:
        body = await api.data(
            SET_RESTRICTIONS, {"input": {"channelId": channel} | fields}, token=token
        )
        payload: dict[str, Any] = body["setChannelRestrictions"]
        return payload

    # Given the platform restricts A to China, VIP and retail buyers
    to_a = await restrict(
        tree["root"].key, tree["A"].id, regions=["cn"], customerGroups=["vip", " retail "]
    )
    assert to_a == {
        "channel": {"id": tree["A"].id, "regions": ["CN"], "customerGroups": ["retail", "vip"]},
        "userErrors": [],
    }
    # And A restricts A1 to Guangdong and VIPs
    to_a1 = await restrict(tree["A"].key, tree["A1"].id, regions=["CN-GD"], customerGroups=["vip"])
    assert to_a1["userErrors"] == []
    finance = await issue_key(api, tree["A"].key, tree["A"].id, "FINANCE")
    before = await commerce_rows(db)

    # When A widens A11 beyond A1's sets, or gives malformed regions
    a, a11 = tree["A"].key, tree["A11"].id
    assert (await restrict(a, a11, regions=["CN-SH", "cn-gd"]))["userErrors"] == [
        {
            "field": ["regions"],
            "code": "REGION_NOT_ALLOWED",
            "message": "The parent does not sell to CN-SH.",
        }
    ]
    assert (await restrict(a, a11, customerGroups=["retail"]))["userErrors"] == [
        {
            "field": ["customerGroups"],
            "code": "INVALID_INPUT",
            "message": "The parent does not sell to customer groups retail.",
        }
    ]
    assert (await restrict(a, a11, regions=["XYZ"], customerGroups=[" "]))["userErrors"] == [
        {
            "field": ["regions"],
            "code": "INVALID_INPUT",
            "message": "Not ISO 3166-2 region codes (like CN or CN-GD): XYZ.",
        },
        {
            "field": ["customerGroups"],
            "code": "INVALID_INPUT",
            "message": "Customer group names have 1 to 64 characters.",
        },
    ]
    # When A names itself, a channel outside, or a FINANCE key tries
    assert (await restrict(a, tree["A"].id, regions=["CN"]))["userErrors"] == [
        {
            "field": ["channelId"],
            "code": "FORBIDDEN",
            "message": "You set restrictions for channels below your own only.",
        }
    ]
    assert (await restrict(tree["B"].key, a11, regions=["CN"]))["userErrors"] == [NO_SUCH_CHANNEL]
    assert (await restrict(finance.key, a11, regions=["CN-GD"]))["userErrors"] == forbidden(
        "Your role may not set restrictions for channels."
    )
    # Then nothing changed
    assert await commerce_rows(db) == before

    # When A gives A11 empty regions and leaves its groups out, then empties the groups
    inherited = await restrict(a, a11, regions=[])
    assert inherited["channel"] == {"id": a11, "regions": ["CN-GD"], "customerGroups": []}
    inherited = await restrict(a, a11, customerGroups=[])
    assert inherited["channel"] == {"id": a11, "regions": ["CN-GD"], "customerGroups": ["vip"]}

    # Then orders from A11 pass the check of every channel on its path, root first
    path = await db.fetchval("SELECT path::text FROM channels WHERE id = $1", key_of(a11))
    restrictions = await commerce.path_restrictions(db, path)
    assert restrictions == [
        ([], []),  # the platform
        (["CN"], ["retail", "vip"]),  # A
        (["CN-GD"], ["vip"]),  # A1
        (["CN-GD"], ["vip"]),  # A11
    ]
    assert check_sale(restrictions, "CN-GD", "vip") is None
    refused = check_sale(restrictions, "CN-SH", "vip")
    assert refused is not None
    assert (refused.rule, refused.depth) == (SaleRule.REGION_NOT_ALLOWED, 2)
    refused = check_sale(restrictions, "CN-GD", "retail")
    assert refused is not None
    assert (refused.rule, refused.depth) == (SaleRule.CUSTOMER_GROUP_NOT_ALLOWED, 2)


async def test_a_middle_channel_cannot_show_what_a_channel_above_hid_below_it(
    api: Api, tree: dict[str, Node]
) -> None:
    # Given A hides P for its grandchild A11; A1 between them still sees P
    p = (await create_product(api, tree["root"].key, name="Card P"))["id"]
    hide = {"channelId": tree["A11"].id, "productIds": [p], "visible": False}
    await api.data(SET_PRODUCTS, {"input": hide}, token=tree["A"].key)

    # When A1 shows P to A11
    shown = await api.data(SET_PRODUCTS, {"input": hide | {"visible": True}}, token=tree["A1"].key)

    # Then A11 still cannot see it: only A (or a channel above A) can undo A's choice
    assert shown["setChannelProducts"]["userErrors"] == []
    assert await names_listed(api, tree["A11"].key) == []
    await api.data(SET_PRODUCTS, {"input": hide | {"visible": True}}, token=tree["A"].key)
    assert await names_listed(api, tree["A11"].key) == ["Card P"]
