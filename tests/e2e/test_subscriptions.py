"""Subscriptions over a real WebSocket (graphql-transport-ws) through uvicorn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.conftest import CREATE_CHANNEL, Api, LiveServer, Node

PROTOCOL = "graphql-transport-ws"
CHANNEL_CREATED = "subscription { channelCreated { id name } }"


@asynccontextmanager
async def socket(server: LiveServer) -> AsyncIterator[ClientConnection]:
    async with connect(server.ws_url, subprotocols=[Subprotocol(PROTOCOL)], open_timeout=5) as ws:
        assert ws.subprotocol == PROTOCOL
        yield ws


async def receive(ws: ClientConnection, within: float) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return message


async def init(ws: ClientConnection, payload: dict[str, Any] | None) -> None:
    message: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        message["payload"] = payload
    await ws.send(json.dumps(message))


async def create(api: Api, token: str, name: str, parent: str) -> str:
    created = await api.data(
        CREATE_CHANNEL, {"input": {"name": name, "parentId": parent}}, token=token
    )
    assert created["createChannel"]["userErrors"] == []
    channel_id: str = created["createChannel"]["channel"]["id"]
    return channel_id


async def next_created(ws: ClientConnection, within: float) -> dict[str, str]:
    """The next channel the subscription pushes (skipping nothing)."""
    message = await receive(ws, within)
    assert message["type"] == "next", message
    assert message["id"] == "1"
    assert "errors" not in message["payload"], message
    created: dict[str, str] = message["payload"]["data"]["channelCreated"]
    return created


async def wait_until_live(ws: ClientConnection, api: Api, a: Node) -> None:
    """Probe with channels under A until one comes through, then drain the other probes.

    graphql-transport-ws does not acknowledge a subscribe, so this is how a client knows
    the server is listening. Probes created before it listened are simply never pushed.
    """
    deadline = time.monotonic() + 10
    for n in range(1000):
        assert time.monotonic() < deadline, "the subscription never delivered a probe"
        await create(api, a.key, f"probe {n}", a.id)
        try:
            seen = await next_created(ws, within=0.2)
        except TimeoutError:
            continue
        assert seen["name"].startswith("probe ")
        last = f"probe {n}"
        while seen["name"] != last:
            seen = await next_created(ws, within=2)
        return


async def test_channel_created_reaches_ancestors_only(
    server: LiveServer, api: Api, tree: dict[str, Node]
) -> None:
    async with socket(server) as ws:
        # Given A's WebSocket, initialised with A's key
        await init(ws, {"authorization": f"Bearer {tree['A'].key}"})
        assert (await receive(ws, within=5))["type"] == "connection_ack"

        # And subscribed to channelCreated
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": CHANNEL_CREATED}})
        )
        await wait_until_live(ws, api, tree["A"])

        # When a channel is created two levels down, under A1
        deep = await create(api, tree["A1"].key, "deep store", tree["A1"].id)

        # Then it arrives within a second
        assert await next_created(ws, within=1) == {"id": deep, "name": "deep store"}

        # When a channel is created under B, and after it one under A11
        await create(api, tree["B"].key, "B store", tree["B"].id)
        later = await create(api, tree["A11"].key, "later store", tree["A11"].id)

        # Then the next event A gets is the later one: B's was never sent to A
        assert await next_created(ws, within=1) == {"id": later, "name": "later store"}
        # And nothing else is pending
        with pytest.raises(TimeoutError):
            await receive(ws, within=0.2)

        # When A completes the subscription, the socket stays open and usable
        await ws.send(json.dumps({"id": "1", "type": "complete"}))
        await ws.send(json.dumps({"type": "ping"}))
        assert (await receive(ws, within=2))["type"] == "pong"


async def test_subscription_of_a_leaf_sees_nothing_of_its_siblings(
    server: LiveServer, api: Api, tree: dict[str, Node]
) -> None:
    async with socket(server) as ws:
        # Given A11 (a leaf) subscribed to channelCreated
        await init(ws, {"authorization": f"Bearer {tree['A11'].key}"})
        assert (await receive(ws, within=5))["type"] == "connection_ack"
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": CHANNEL_CREATED}})
        )
        await wait_until_live(ws, api, tree["A11"])

        # When its parent gets another child and then A11 gets one
        await create(api, tree["A1"].key, "A12", tree["A1"].id)
        mine = await create(api, tree["A11"].key, "A111", tree["A11"].id)

        # Then A11 hears only of its own child
        assert await next_created(ws, within=1) == {"id": mine, "name": "A111"}


REFUSED_INITS: list[tuple[str, dict[str, Any] | None]] = [
    ("unknown key", {"authorization": "Bearer qk_999999_not-a-real-secret"}),
    ("malformed key", {"authorization": "Bearer qk_x"}),
    ("forged session", {"authorization": "Bearer qs_forged.token"}),
    ("garbage token", {"authorization": "Bearer nonsense"}),
    ("wrong scheme", {"authorization": "Basic YTpi"}),
    ("token not a string", {"authorization": 42}),
    ("missing token", {}),
    ("no payload", None),
]


async def test_bad_or_missing_token_is_refused_with_4403(server: LiveServer) -> None:
    for case, payload in REFUSED_INITS:
        async with socket(server) as ws:
            # Given a WebSocket whose connection_init carries a bad token or none
            await init(ws, payload)

            # When the client waits for the acknowledgement
            # Then the server closes the socket with 4403 instead
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws, within=5)
            assert closed.value.rcvd is not None, case
            assert closed.value.rcvd.code == 4403, case


async def test_revoked_key_is_refused_with_4403(
    server: LiveServer, api: Api, tree: dict[str, Node]
) -> None:
    # Given A's key, revoked by the platform
    revoked = await api.data(
        """mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) {
             userErrors { code } } }""",
        {"input": {"apiKeyId": tree["A"].key_id}},
        token=tree["root"].key,
    )
    assert revoked["revokeApiKey"]["userErrors"] == []

    async with socket(server) as ws:
        # When A's revoked key opens a WebSocket
        await init(ws, {"authorization": f"Bearer {tree['A'].key}"})

        # Then the server closes it with 4403
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws, within=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


MALFORMED_SUBSCRIPTIONS = [
    (
        "subscription a { channelCreated { id } } subscription b { channelCreated { name } }",
        {},
        "give `operationName` to choose one",
    ),
    ("subscription { channelCreated { nope } }", {}, "Cannot query field 'nope'"),
    (
        "subscription($id: ID) { orderUpdated(orderId: $id) { id } }",
        {"id": "a\u0000"},
        "Text must not contain NUL characters",
    ),
]


async def _acknowledged(ws: ClientConnection, node: Node) -> None:
    await init(ws, {"authorization": f"Bearer {node.key}"})
    assert (await receive(ws, within=5))["type"] == "connection_ack"


async def _subscribe(ws: ClientConnection, n: int, query: str, variables: dict[str, Any]) -> None:
    payload = {"query": query, "variables": variables}
    await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": payload}))


async def test_a_subscription_that_does_not_validate_is_answered_with_its_error(
    server: LiveServer, tree: dict[str, Node]
) -> None:
    async with socket(server) as ws:
        await _acknowledged(ws, tree["A"])
        for n, (query, variables, said) in enumerate(MALFORMED_SUBSCRIPTIONS, start=1):
            # When a subscription that does not validate or take its variables comes
            await _subscribe(ws, n, query, variables)

            # Then the server answers it with an error that says why
            answer = await receive(ws, within=5)
            assert (answer["type"], answer["id"]) == ("error", str(n)), answer
            assert [said in e["message"] for e in answer["payload"]] == [True], answer


async def test_a_subscription_that_does_not_parse_closes_the_socket_saying_why(
    server: LiveServer, tree: dict[str, Node]
) -> None:
    async with socket(server) as ws:
        await _acknowledged(ws, tree["A"])

        # When a subscription that does not parse comes
        await _subscribe(ws, 1, "subscription { channelCreated { id }", {})

        # Then the server closes the socket as graphql-transport-ws does for a bad
        # request, with 4400 and the syntax error
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws, within=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4400
        assert closed.value.rcvd.reason.startswith("Syntax Error: Expected Name")
