"""Guards against abuse: revoked keys on open sockets, parallel password guessing, huge
bodies, invented field names in metrics, impossible numbers and times."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from settings import Settings
from tests.conftest import Api, LiveServer, Node
from tests.e2e.test_auth import create_user, login


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"login_attempts": 5, "max_body_bytes": 64 * 1024})


async def test_a_key_revoked_while_its_socket_is_open_stops_working_there(
    server: LiveServer, api: Api, tree: dict[str, Node]
) -> None:
    # Given A's socket, open and acknowledged
    async with connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": tree["A"].key}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"

        # When the platform revokes A's key
        revoked = await api.data(
            "mutation($id: ID!) { revokeApiKey(input: {apiKeyId: $id}) { userErrors { code } } }",
            {"id": tree["A"].key_id},
            token=tree["root"].key,
        )
        assert revoked["revokeApiKey"]["userErrors"] == []

        # Then the next operation over the socket is refused as unauthenticated
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": 'mutation { createChannel(input: {name: "x"}) { channel { id } } }'
                    },
                }
            )
        )
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
    errors = answer["payload"]["errors"] if answer["type"] == "next" else answer["payload"]
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]
    assert "revoked" in errors[0]["message"]


async def test_parallel_guesses_cannot_exceed_the_login_limit(
    api: Api, tree: dict[str, Node], settings: Settings
) -> None:
    # Given a user
    await create_user(api, tree["A"].key, "owner@a.example", "right password", "OWNER")

    # When 40 wrong guesses arrive at once
    results = await asyncio.gather(
        *(login(api, "owner@a.example", f"guess {i}") for i in range(40))
    )

    # Then at most the limit were checked; the rest were refused unchecked
    codes = [r["userErrors"][0]["code"] for r in results]
    assert codes.count("INVALID_CREDENTIALS") == settings.login_attempts
    assert codes.count("RATE_LIMITED") == 40 - settings.login_attempts


async def test_a_body_over_the_limit_is_refused_with_413(
    server: LiveServer, tree: dict[str, Node]
) -> None:
    big = {"query": "{ viewer { role } }", "variables": {"x": "y" * 200_000}}
    async with httpx.AsyncClient() as http:
        response = await http.post(server.graphql_url, json=big)

        async def chunks() -> AsyncIterator[bytes]:
            yield json.dumps(big).encode()

        streamed = await http.post(
            server.graphql_url, content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert streamed.status_code == 413
    (error,) = response.json()["errors"]
    assert "larger than 65536 bytes" in error["message"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}


async def test_invented_field_names_never_become_metric_labels(
    server: LiveServer, api: Api, tree: dict[str, Node]
) -> None:
    for i in range(5):
        await api.raw(f"{{ invented{i} }}", token=tree["A"].key)
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(server.url + "/metrics")).text
    assert "invented" not in metrics
    assert 'field="invalid"' in metrics


@pytest.mark.parametrize("value", ["NaN", "1e400", "Infinity", "1e30", "-0.5"])
async def test_impossible_percentages_are_refused(
    api: Api, tree: dict[str, Node], value: str
) -> None:
    refused = await api.raw(
        """mutation($p: Decimal!, $id: ID!) { setSplitRule(input: {channelId: $id, kind: RATIO,
             supplierPercent: $p, platformPercent: "0"}) { userErrors { code } } }""",
        {"p": value, "id": tree["A"].id},
        token=tree["root"].key,
    )
    assert "Internal server error." not in json.dumps(refused)
    errors: Any = refused.get("data") and refused["data"]["setSplitRule"]["userErrors"]
    assert errors == [{"code": "INVALID_INPUT"}] or refused.get("errors")


async def test_impossible_times_are_refused(api: Api, tree: dict[str, Node]) -> None:
    answer = await api.raw(
        """query($id: ID) { statement(channelId: $id, from: "0001-01-01T00:00:00+14:00",
             to: "2030-01-01T00:00:00Z") { closing } }""",
        {"id": tree["A"].id},
        token=tree["A"].key,
    )
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["BAD_REQUEST"]


async def test_values_sent_in_bad_requests_are_not_logged(
    api: Api, tree: dict[str, Node], caplog: pytest.LogCaptureFixture
) -> None:
    # When a login and an import with a wrong extra field carry secrets
    caplog.set_level("DEBUG")
    await api.raw(
        'mutation { login(input: {email: "a@b.cd", password: "MyLoginPassw0rd!", x: 1}) { token } }'
    )
    await api.raw(
        'mutation { importCodes(input: {poolId: "UG9vbDox", codes: [{code: '
        '"PLAINTEXT-CODE-SECRET-8888", bogus: 1}]}) { imported } }',
        token=tree["root"].key,
    )

    # Then neither value reaches the log
    assert "MyLoginPassw0rd!" not in caplog.text
    assert "PLAINTEXT-CODE-SECRET-8888" not in caplog.text


async def test_nul_characters_are_refused_not_stored(api: Api, tree: dict[str, Node]) -> None:
    # PostgreSQL cannot store NUL in text; such input must be a clear error, not a 500
    in_variable = await api.raw(
        "query($s: String) { products(filter: {search: $s}) { edges { cursor } } }",
        {"s": "a\x00b"},
        token=tree["A"].key,
    )
    in_literal = await api.raw(
        '{ products(filter: {search: "a\\u0000b"}) { edges { cursor } } }', token=tree["A"].key
    )
    for answer in (in_variable, in_literal):
        assert [e["message"] for e in answer["errors"]] == [
            "Text must not contain NUL characters (\\u0000)."
        ]
