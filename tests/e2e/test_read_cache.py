"""Cached reads across processes: a change made through one server is seen by the
next request to any other server sharing the database and Valkey."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from settings import Settings
from tests.conftest import Api, Node, eventually, http_client, live_server
from tests.e2e.test_auth import REVOKE_KEY
from tests.e2e.test_commerce import SET_PRICE
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input, stocked_product

VIEWER = "{ viewer { role } }"


async def test_a_price_set_is_paid_by_the_very_next_order(api: Api, tree: dict[str, Node]) -> None:
    # Given agent A has ordered once at the base price (so its offer is cached)
    product = await stocked_product(api, tree["root"].key, 5)
    await funded(api, tree["root"].key, tree["A"].id, "500.00", "bank-1")
    first = await api.data(PLACE, order_input(product, "k1"), token=tree["A"].key)
    assert first["placeOrder"]["order"]["unitPrice"] == "25.00"

    # When the platform sets A's price and A orders right after
    changed = await api.data(
        SET_PRICE,
        {"input": {"channelId": tree["A"].id, "productId": product, "price": "30.00"}},
        token=tree["root"].key,
    )
    assert changed["setChannelPrice"]["userErrors"] == []
    second = await api.data(PLACE, order_input(product, "k2"), token=tree["A"].key)

    # Then the order pays the new price
    assert Decimal(second["placeOrder"]["order"]["unitPrice"]) == Decimal("30.00")


async def test_changes_through_one_server_reach_the_cache_of_another(
    api: Api, tree: dict[str, Node], settings: Settings
) -> None:
    product = await stocked_product(api, tree["root"].key, 5)
    await funded(api, tree["root"].key, tree["A"].id, "500.00", "bank-1")
    async with live_server(settings) as other, http_client(timeout=30) as http:
        second = Api(http, other.graphql_url)
        # Given the other server has cached A's key and A's offer
        placed = await second.data(PLACE, order_input(product, "k1"), token=tree["A"].key)
        assert placed["placeOrder"]["order"]["unitPrice"] == "25.00"

        # When the price changes and A's key is revoked through the first server
        await api.data(
            SET_PRICE,
            {"input": {"channelId": tree["A"].id, "productId": product, "price": "30.00"}},
            token=tree["root"].key,
        )

        async def new_price_seen() -> bool:
            body = await second.data(
                PLACE,
                order_input(product, f"probe-{asyncio.get_running_loop().time()}"),
                token=tree["A"].key,
            )
            return bool(body["placeOrder"]["order"]["unitPrice"] == "30.00")

        # Then the other server charges the new price within moments
        assert await eventually(new_price_seen)

        await api.data(
            REVOKE_KEY, {"input": {"apiKeyId": tree["A"].key_id}}, token=tree["root"].key
        )

        async def refused() -> bool:
            body = await second.raw(VIEWER, token=tree["A"].key)
            return bool(body.get("errors"))

        # And refuses the revoked key
        assert await eventually(refused)
