"""stockChanged over a real WebSocket, fed by the pool actors through Valkey pub/sub."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from actors.messages import Reserved
from schema import ids
from server import Services
from tests.conftest import LiveServer, Node
from tests.integration.pool_fixtures import make_pool, make_product

SUBSCRIBE = "subscription { stockChanged { productId available reserved sold frozen } }"


async def subscriber(server: LiveServer, key: str) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": key}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
    return ws


async def next_level(ws: ClientConnection, within: float) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), within))
    assert message["type"] == "next", message
    level: dict[str, Any] = message["payload"]["data"]["stockChanged"]
    return level


async def test_subscribers_see_stock_they_may_see_within_a_second(
    server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a product on shelf and one off shelf, each with a pool of 10 codes
    on_shelf = await make_product(db, "on shelf")
    off_shelf = await make_product(db, "off shelf")
    await db.execute("UPDATE products SET on_shelf = false WHERE id = $1", off_shelf)
    on_pool = await make_pool(db, 10, on_shelf)
    off_pool = await make_pool(db, 10, off_shelf)
    # And the platform and agent A watching all stock
    platform = await subscriber(server, tree["root"].key)
    agent = await subscriber(server, tree["A"].key)
    await asyncio.sleep(0.2)  # both subscriptions are registered before the first change
    services: Services = server.app.state.services

    # When 3 codes of the off-shelf product are reserved
    started = asyncio.get_running_loop().time()
    assert isinstance(await services.pools.reserve(off_pool, "order-1", 3), Reserved)

    # Then the platform sees the new level within a second
    assert await next_level(platform, within=1.0) == {
        "productId": ids.encode("Product", off_shelf),
        "available": 7,
        "reserved": 3,
        "sold": 0,
        "frozen": 0,
    }
    assert asyncio.get_running_loop().time() - started < 1.0

    # And when a code of the on-shelf product is reserved, that is the first thing the
    # agent hears: it never heard of the product it cannot see
    assert isinstance(await services.pools.reserve(on_pool, "order-2", 1), Reserved)
    heard = await next_level(agent, within=1.0)
    assert heard["productId"] == ids.encode("Product", on_shelf)
    assert (heard["available"], heard["reserved"]) == (9, 1)
    await platform.close()
    await agent.close()


async def test_a_burst_is_coalesced_to_the_latest_level(
    server: LiveServer, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a subscriber and a pool of 100 codes
    product = await make_product(db)
    pool = await make_pool(db, 100, product)
    ws = await subscriber(server, tree["root"].key)
    await asyncio.sleep(0.2)
    services: Services = server.app.state.services

    # When 50 reservations land one after another
    for i in range(50):
        await services.pools.reserve(pool, f"order-{i}", 1)

    # Then far fewer than 50 messages arrive, and the last one is the final level
    levels = [await next_level(ws, within=1.0)]
    while levels[-1]["reserved"] != 50:
        levels.append(await next_level(ws, within=1.0))
    assert len(levels) < 25
    assert levels[-1]["available"] == 50
    await ws.close()
